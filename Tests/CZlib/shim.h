#ifndef NVMETRACE_CZLIB_SHIM_H
#define NVMETRACE_CZLIB_SHIM_H
/* zlib, for the tests' PNG decoder (HTMLReportTests reads Chromium's screenshots). */
#include <zlib.h>
#endif
