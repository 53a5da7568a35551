/* fuzz.h: the libFuzzer entry points every harness under tests/fuzz defines. The same harness
 * links either with libFuzzer (-Dfuzz=true, clang) or with replay.c, which feeds it the files of a
 * committed corpus as an ordinary test. */
#ifndef P2P_FUZZ_H
#define P2P_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input. Must not crash, leak or hang on any input; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional one-time set-up (weak in replay.c). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
