#ifndef NVMETRACE_CPCAP_SHIM_H
#define NVMETRACE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>

/* Standard input's stream, for pcap_fopen_offline ("-"). Swift 6 refuses to read C's mutable
   global `stdin` directly. */
static inline FILE *nvmetrace_stdin(void) { return stdin; }
#endif
