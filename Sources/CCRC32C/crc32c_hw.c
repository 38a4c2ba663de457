// CRC32C with the CPU's instruction, selected at run time. The NVMe/TCP data digest is CRC32C
// (Castagnoli); x86 SSE4.2 and ARMv8 implement exactly that polynomial.
#include "crc32c_hw.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>

int nvmetrace_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
#if defined(__x86_64__)
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
#endif
    while (len > 0) {
        crc = _mm_crc32_u8(crc, *p++);
        len--;
    }
    return crc;
}

#elif defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int nvmetrace_crc32c_hw_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
}

__attribute__((target("+crc")))
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        crc = __crc32cd(crc, v);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = __crc32cb(crc, *p++);
        len--;
    }
    return crc;
}

#else
int nvmetrace_crc32c_hw_available(void) { return 0; }
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    (void)data; (void)len;
    return crc;
}
#endif
