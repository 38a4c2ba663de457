#ifndef NVMETRACE_MAPPED_FILE_H
#define NVMETRACE_MAPPED_FILE_H

#include <stddef.h>

/* Maps `size` bytes of the open file `fd` read-only, for reading a capture through fmemopen.
   A file that shrinks while mapped would kill the process with SIGBUS at the first access past
   its new end (tcpdump -W reopens its oldest ring file with O_TRUNC). So a SIGBUS handler is
   installed once: a fault inside a mapping made here maps a page of zeros over the missing page
   and counts the fault, and reading goes on (libpcap then sees zero bytes and the caller reports
   the file as changed); any other SIGBUS goes to the handler that was there before. Returns NULL
   when the file cannot be mapped (or too many mappings are open). */
void *nvmetrace_map_file(int fd, size_t size);

/* Unmaps a mapping made by nvmetrace_map_file. */
void nvmetrace_unmap_file(void *base, size_t size);

/* Pages of this mapping that were gone when read (see above). */
long nvmetrace_mapping_faults(const void *base);

/* Such faults in all mappings so far: a cheap check per packet. */
extern volatile long nvmetrace_mapped_faults;
static inline long nvmetrace_mapped_faults_total(void) { return nvmetrace_mapped_faults; }

#endif
