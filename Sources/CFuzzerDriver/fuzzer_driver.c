#include "fuzzer_driver.h"

// Weak: present only when libFuzzer is linked in (Fuzz/run builds with -sanitize=fuzzer). The
// plain build links without it and replays files instead.
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t)) __attribute__((weak));

int nvmetrace_run_fuzzer(int *argc, char ***argv, nvmetrace_fuzz_callback callback) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
