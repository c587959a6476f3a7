/* mock_exec.h — a fake model for engine tests: an executor whose "KV cache" stores, for every
 * position, a 64-bit value that depends on the token and on every earlier value read back
 * through the block tables, and whose logits are a hash of that value and of the values read
 * through the sliding window. A wrong block (stale, shared by mistake, evicted while in use,
 * missing) changes the output or is reported; a correct engine gives exactly
 * mock_reference_logits() of the sequence's tokens. With check = false it computes nothing
 * (logits from a hash of token and position): the "null model" for scheduler timing.
 * Not a model: no math worth the name. Test code only. */
#ifndef G4_TESTS_MOCK_EXEC_H
#define G4_TESTS_MOCK_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct mock_exec {
    int V, B, W, max_blocks;
    int n_blocks_s, n_blocks_g;
    uint64_t *kv_s, *kv_g;   /* [n_blocks × B] */
    bool check;
    long faults;             /* missing / unwritten / inconsistent blocks seen */
    char first_fault[256];
    uint64_t steps, tokens;
} mock_exec;

int mock_exec_init(mock_exec *m, int V, int B, int W, int max_blocks, int n_blocks_s, int n_blocks_g, bool check);
void mock_exec_free(mock_exec *m);
void mock_exec_bind(mock_exec *m, g4_executor *ex);
/* Logits [V] after the sequence tokens[0..n) (what the engine must see for its last token). */
void mock_reference_logits(const mock_exec *m, const int32_t *tokens, int n, float *out);

#endif
