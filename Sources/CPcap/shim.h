#ifndef NVMETRACE_CPCAP_SHIM_H
#define NVMETRACE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Standard input's stream, for pcap_fopen_offline ("-"). Swift 6 refuses to read C's mutable
   global `stdin` directly. */
static inline FILE *nvmetrace_stdin(void) { return stdin; }

/* Pins the calling thread (and the processes it starts afterwards) to one CPU, for the benchmark.
   glibc's CPU_SET macros and sched_setaffinity need _GNU_SOURCE, which a module header cannot
   set for the system headers, so the system call is made directly with a 1024-CPU mask. */
static inline int nvmetrace_pin_to_cpu(int cpu) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
    if (cpu < 0 || cpu >= 1024) return -1;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
}
#endif
