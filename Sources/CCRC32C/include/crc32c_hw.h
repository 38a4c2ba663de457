#ifndef NVMETRACE_CRC32C_HW_H
#define NVMETRACE_CRC32C_HW_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU has a CRC32C instruction (x86 SSE4.2, ARMv8 CRC), else 0.
int nvmetrace_crc32c_hw_available(void);

/// Continues a CRC32C over `len` bytes. `crc` is the running state (initial value 0xFFFFFFFF,
/// no final inversion), exactly as the table-driven Swift implementation keeps it. Only call when
/// nvmetrace_crc32c_hw_available() returned 1.
uint32_t nvmetrace_crc32c_hw_update(uint32_t crc, const void *data, size_t len);

#endif
