// CRC32C with the CPU's instruction, selected at run time. The NVMe/TCP data digest is CRC32C
// (Castagnoli); x86 SSE4.2 and ARMv8 implement exactly that polynomial.
#include "crc32c_hw.h"
#include <pthread.h>
#include <string.h>

// The instruction has a latency of three cycles but starts one per cycle: three independent CRCs
// over three adjacent lanes run three times as fast as one. The register is linear in GF(2), so
// crc(r, A || B) = Z(crc(r, A)) ^ crc(0, B), where Z advances a register through LANE zero bytes;
// Z is linear too and is applied with four 256-entry tables per lane size (built once, with the
// instruction).
#if defined(__x86_64__) || defined(__aarch64__)
// Two lane sizes: 3 × 256 bytes, then 3 × 64 for what is left (a 1448-byte segment: 768 + 576 +
// 104 bytes single-lane).
#define LONG_LANE 256
#define SHORT_LANE 64
static uint32_t zeros_long[4][256], zeros_short[4][256];
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;

static inline uint32_t advance(const uint32_t zeros[4][256], uint32_t c) {
    return zeros[0][c & 0xFF] ^ zeros[1][(c >> 8) & 0xFF] ^ zeros[2][(c >> 16) & 0xFF] ^ zeros[3][c >> 24];
}

static uint32_t single_lane(uint32_t crc, const unsigned char *p, size_t len);

static void build_zeros_ops(void) {
    static const unsigned char zeros[LONG_LANE];
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            zeros_long[k][v] = single_lane(v << (8 * k), zeros, LONG_LANE);
            zeros_short[k][v] = single_lane(v << (8 * k), zeros, SHORT_LANE);
        }
}

// Consumes whole blocks of three lanes from (p, len) into crc. STEP is the 8-byte instruction,
// REG the register type it takes.
#define THREE_LANES(lane, zeros, STEP, REG)                                             \
    while (len >= 3 * (lane)) {                                                         \
        REG a = crc, b = 0, c = 0;                                                      \
        for (size_t i = 0; i < (lane); i += 8) {                                        \
            uint64_t va, vb, vc;                                                        \
            memcpy(&va, p + i, 8);                                                      \
            memcpy(&vb, p + (lane) + i, 8);                                             \
            memcpy(&vc, p + 2 * (lane) + i, 8);                                         \
            a = STEP(a, va);                                                            \
            b = STEP(b, vb);                                                            \
            c = STEP(c, vc);                                                            \
        }                                                                               \
        crc = advance(zeros, advance(zeros, (uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;  \
        p += 3 * (lane);                                                                \
        len -= 3 * (lane);                                                              \
    }

#define ALL_THREE_LANE_BLOCKS(STEP, REG)                                                \
    if (len >= 3 * SHORT_LANE) {                                                        \
        pthread_once(&zeros_once, build_zeros_ops);                                     \
        THREE_LANES(LONG_LANE, zeros_long, STEP, REG)                                   \
        THREE_LANES(SHORT_LANE, zeros_short, STEP, REG)                                 \
    }
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>

int nvmetrace_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
static uint32_t single_lane(uint32_t crc, const unsigned char *p, size_t len) {
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

__attribute__((target("sse4.2")))
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
#if defined(__x86_64__)
    ALL_THREE_LANE_BLOCKS(_mm_crc32_u64, uint64_t)
#endif
    return single_lane(crc, p, len);
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
static uint32_t single_lane(uint32_t crc, const unsigned char *p, size_t len) {
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

__attribute__((target("+crc")))
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    ALL_THREE_LANE_BLOCKS(__crc32cd, uint32_t)
    return single_lane(crc, p, len);
}

#else
int nvmetrace_crc32c_hw_available(void) { return 0; }
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len) {
    (void)data; (void)len;
    return crc;
}
#endif
