#ifndef NVMETRACE_FUZZER_DRIVER_H
#define NVMETRACE_FUZZER_DRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*nvmetrace_fuzz_callback)(const uint8_t *data, size_t size);

/// libFuzzer's driver when the binary is linked with -sanitize=fuzzer; otherwise 0 is returned
/// and the caller replays the inputs it was given.
int nvmetrace_run_fuzzer(int *argc, char ***argv, nvmetrace_fuzz_callback callback);
#endif
