#ifndef NVMETRACE_CPCAP_SHIM_H
#define NVMETRACE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
