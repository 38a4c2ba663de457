// The benchmark's floor: the least a program can do to read a capture with libpcap. It opens the
// file, calls pcap_next_ex for every packet and touches the first and last captured byte, so the
// packet data is really read. In C, so that its start-up (about 2 ms) is not a Swift program's
// (5-7 ms: dynamic linking and runtime metadata): nvmetrace is timed against the leanest reader.
//
//   nvmetrace-floor FILE                  libpcap as it opens files (stdio's default 4 KiB buffer)
//   nvmetrace-floor --mapped FILE         the same loop reading the file as nvmetrace does: mapped,
//                                         through an fmemopen stream, pages dropped behind every
//                                         8 MiB (the stricter floor)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int mapped = 0;
    int i = 1;
    if (argc == 3 && strcmp(argv[1], "--mapped") == 0) {
        mapped = 1;
        i = 2;
    } else if (argc != 2) {
        fprintf(stderr, "usage: nvmetrace-floor [--mapped] FILE\n");
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p;
    unsigned char *map = NULL;
    FILE *mapStream = NULL;
    if (mapped) {
        int fd = open(argv[i], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) { perror(argv[i]); return 2; }
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) { perror("mmap"); return 2; }
        madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
        mapStream = fmemopen(map, (size_t)st.st_size, "rb");
        if (!mapStream) { perror("fmemopen"); return 2; }
        p = pcap_fopen_offline(mapStream, err);
    } else {
        p = pcap_open_offline(argv[i], err);
    }
    if (!p) { fprintf(stderr, "%s\n", err); return 2; }
    struct pcap_pkthdr *h;
    const u_char *d;
    unsigned long long packets = 0, bytes = 0, sum = 0, sinceDrop = 0;
    long dropped = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        packets++;
        bytes += h->caplen;
        if (h->caplen > 0) sum += d[0] + d[h->caplen - 1];
        sinceDrop += h->caplen;
        if (mapped && sinceDrop >= (8u << 20)) {
            sinceDrop = 0;
            long pos = ftell(mapStream) & ~((1L << 16) - 1);
            if (pos > dropped) { madvise(map + dropped, (size_t)(pos - dropped), MADV_DONTNEED); dropped = pos; }
        }
    }
    pcap_close(p);
    printf("%llu packets %llu bytes %llu\n", packets, bytes, sum & 1);
    // The benchmark asks every tool it runs for its own peak RSS (as nvmetrace reports it).
    if (getenv("NVMETRACE_PEAK_RSS")) {
        FILE *st = fopen("/proc/self/status", "r");
        char line[256];
        while (st && fgets(line, sizeof line, st)) {
            if (strncmp(line, "VmHWM:", 6) == 0) {
                fprintf(stderr, "nvmetrace: peak RSS %lld KiB\n", strtoll(line + 6, NULL, 10));
                break;
            }
        }
        if (st) fclose(st);
    }
    return 0;
}
