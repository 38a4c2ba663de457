#define _GNU_SOURCE
#include "mapped_file.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_MAPPINGS 64

/* Read by the signal handler, written by any thread: a slot is claimed (used 0 -> 2) by
   compare-and-swap, filled, then published (used = 1); the handler only reads published slots. */
static struct {
    volatile uintptr_t base;
    volatile size_t size;
    volatile long faults;
    volatile sig_atomic_t used;
} mappings[MAX_MAPPINGS];

volatile long nvmetrace_mapped_faults;

static struct sigaction previous;
static int installed;
static long page_size;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        if (mappings[i].used != 1) continue;
        uintptr_t base = mappings[i].base;
        if (address >= base && address - base < mappings[i].size) {
            void *page = (void *)(address & ~((uintptr_t)page_size - 1));
            if (mmap(page, (size_t)page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
                __sync_fetch_and_add(&mappings[i].faults, 1);
                __sync_fetch_and_add(&nvmetrace_mapped_faults, 1);
                return;  /* the faulting read is retried and finds zeros */
            }
        }
    }
    /* Not ours: give the fault to whoever handled it before (the Swift runtime's backtracer, or
       the default action once the instruction faults again). */
    sigaction(SIGBUS, &previous, NULL);
    (void)sig;
    (void)context;
}

static void install(void) {
    page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous) == 0) installed = 1;
}

void *nvmetrace_map_file(int fd, size_t size) {
    pthread_once(&install_once, install);
    if (size == 0 || !installed) return NULL;
    int slot = -1;
    for (int i = 0; i < MAX_MAPPINGS && slot < 0; i++) {
        if (__sync_bool_compare_and_swap(&mappings[i].used, 0, 2)) slot = i;
    }
    if (slot < 0) return NULL;
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
        mappings[slot].used = 0;
        return NULL;
    }
    madvise(base, size, MADV_SEQUENTIAL);
    mappings[slot].base = (uintptr_t)base;
    mappings[slot].size = size;
    mappings[slot].faults = 0;
    __sync_synchronize();
    mappings[slot].used = 1;
    return base;
}

void nvmetrace_unmap_file(void *base, size_t size) {
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        if (mappings[i].used == 1 && mappings[i].base == (uintptr_t)base) {
            mappings[i].used = 0;
            __sync_synchronize();
            munmap(base, size);
            return;
        }
    }
    munmap(base, size);
}

long nvmetrace_mapping_faults(const void *base) {
    for (int i = 0; i < MAX_MAPPINGS; i++) {
        if (mappings[i].used == 1 && mappings[i].base == (uintptr_t)base) return mappings[i].faults;
    }
    return 0;
}
