/* dataset.h — the requests a benchmark sends: vLLM's `random` dataset (random token ids, fixed or
 * ranged input/output lengths, optional shared prefix) and its `sharegpt` dataset (first human
 * turn as the prompt, the reference answer's token count as the output length).
 *
 * random: input length uniform in [⌊L·(1−r)⌋, ⌈L·(1+r)⌉], output in [max(1, ⌊O·(1−r)⌋), ⌈O·(1+r)⌉]
 * (r = --random-range-ratio), ids uniform in [id_min, vocab). Prompts are token ids, sent as a
 * /v1/completions prompt list, so the server sees exactly prompt_len tokens.
 * sharegpt: entries with ≥ 2 turns, shuffled with the seed; prompt and answer tokenized with the
 * given tokenizer; skipped like vLLM when prompt or answer < 4 tokens, prompt > 1024 or
 * prompt + answer > 2048 (the answer checks are off with a fixed output length). */
#ifndef G4_BENCH_DATASET_H
#define G4_BENCH_DATASET_H

#include <stdint.h>

#include "base/error.h"
#include "text/tokenizer.h"

typedef struct g4_bench_item {
    int32_t *ids;      /* token-id prompt, or NULL */
    int n_ids;
    char *text;        /* text prompt, or NULL */
    int prompt_len;    /* tokens counted as input */
    int output_len;    /* max_tokens (sent with ignore_eos) */
} g4_bench_item;

typedef struct g4_bench_dataset {
    g4_bench_item *items;
    int n;
} g4_bench_dataset;

typedef struct g4_random_opts {
    int input_len, output_len;
    double range_ratio;  /* [0, 1) */
    int prefix_len;      /* shared random prefix prepended to every prompt (counted in prompt_len) */
    long vocab;          /* ids drawn below this */
    int id_min;          /* and at or above this (skip the low special ids) */
    uint64_t seed;
} g4_random_opts;

int g4_dataset_random(g4_bench_dataset *d, int n, const g4_random_opts *o, g4_error *err);

/* output_len > 0: every request asks for that many tokens instead of the reference length. */
int g4_dataset_sharegpt(g4_bench_dataset *d, const char *path, int n, int output_len, const g4_tokenizer *tok,
                        uint64_t seed, g4_error *err);

void g4_dataset_free(g4_bench_dataset *d);

#endif
