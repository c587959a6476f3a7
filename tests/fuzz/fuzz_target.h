/* fuzz_target.h - the one entry point every fuzz target in tests/fuzz/ defines.
 *
 * Each fuzz_*.c implements LLVMFuzzerTestOneInput for one parser. Linked with libFuzzer
 * (clang -fsanitize=fuzzer, G4_FUZZ=ON) it is a coverage-guided fuzzer; linked with replay.c
 * (any compiler, the normal and ASan builds) it replays a corpus once. Targets must not keep
 * state between inputs except what they load once (a tokenizer) and never print. */
#ifndef G4_TESTS_FUZZ_TARGET_H
#define G4_TESTS_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data (malloc'ed; NULL when out of memory): most parsers take C strings. */
char *g4_fuzz_cstr(const uint8_t *data, size_t size);

/* The test tokenizer (tests/text/data/tokenizer.json: the real Gemma 4 vocabulary and a merge
 * subset), loaded once per process; $G4_FUZZ_TOKENIZER names another file. Aborts when it cannot
 * be loaded (the harness is broken, not the input). In fuzz_tokenizer.c, linked with g4text. */
const struct g4_tokenizer *g4_fuzz_tokenizer(void);

#endif
