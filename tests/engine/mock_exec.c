/* mock_exec.c — the fake model for engine tests (see mock_exec.h). */
#include "base/rng.h"
#include "mock_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t mix(uint64_t x) { return g4_mix64(x + G4_SPLITMIX_GAMMA); }

static inline uint64_t value_at(int32_t token, int pos, uint64_t acc_g) {
    return mix(acc_g ^ mix(((uint64_t)(uint32_t)token << 32) | (uint32_t)pos)) | 1;
}

static void fill_logits(uint64_t h, int V, float *out) {
    for (int i = 0; i < V; i++) out[i] = (float)(mix(h + (uint64_t)i) >> 40) * (8.0f / 16777216.0f);
}

int mock_exec_init(mock_exec *m, int V, int B, int W, int max_blocks, int n_blocks_s, int n_blocks_g, bool check) {
    memset(m, 0, sizeof *m);
    *m = (mock_exec){.V = V,
                     .B = B,
                     .W = W,
                     .max_blocks = max_blocks,
                     .n_blocks_s = n_blocks_s,
                     .n_blocks_g = n_blocks_g,
                     .check = check};
    m->kv_s = calloc((size_t)n_blocks_s * B, sizeof *m->kv_s);
    m->kv_g = calloc((size_t)n_blocks_g * B, sizeof *m->kv_g);
    return m->kv_s && m->kv_g ? 0 : -1;
}

void mock_exec_free(mock_exec *m) {
    free(m->kv_s);
    free(m->kv_g);
}

static void fault(mock_exec *m, const char *what, int slot, int pos, int q) {
    if (!m->faults++) snprintf(m->first_fault, sizeof m->first_fault, "%s: slot %d pos %d key %d", what, slot, pos, q);
}

static int mock_step(void *ctx, const g4_step *st, float *logits, g4_error *err) {
    mock_exec *m = ctx;
    m->steps++;
    m->tokens += (uint64_t)st->n_tokens;
    int r = 0, B = m->B;
    for (int t = 0; t < st->n_tokens; t++) {
        int s = st->seq[t], p = st->pos[t];
        if (s < 0 || s >= st->n_seqs) return g4_fail(err, "mock: token %d has slot %d of %d", t, s, st->n_seqs);
        uint64_t h;
        if (m->check) {
            const int32_t *bg = st->blocks_global + (size_t)s * m->max_blocks;
            const int32_t *bs = st->blocks_sliding + (size_t)s * m->max_blocks;
            uint64_t acc_g = 0, acc_s = 0;
            int lo = p - m->W + 1 < 0 ? 0 : p - m->W + 1;
            for (int q = 0; q < p; q++) {
                int b = bg[q / B];
                uint64_t v = b >= 0 && b < m->n_blocks_g ? m->kv_g[(size_t)b * B + q % B] : 0;
                if (!v) fault(m, "global key missing", s, p, q);
                acc_g = mix(acc_g ^ v);
                if (q < lo) continue;
                int c = bs[q / B];
                uint64_t w = c >= 0 && c < m->n_blocks_s ? m->kv_s[(size_t)c * B + q % B] : 0;
                if (w != v) fault(m, "sliding key differs from global", s, p, q);
                acc_s = mix(acc_s ^ w);
            }
            uint64_t v = value_at(st->token_ids[t], p, acc_g);
            int b = bg[p / B], c = bs[p / B];
            if (b < 0 || b >= m->n_blocks_g || c < 0 || c >= m->n_blocks_s)
                return g4_fail(err, "mock: slot %d has no block for position %d", s, p);
            m->kv_g[(size_t)b * B + p % B] = v;
            m->kv_s[(size_t)c * B + p % B] = v;
            h = mix(v ^ mix(acc_s));
        } else {
            h = mix(((uint64_t)(uint32_t)st->token_ids[t] << 20) ^ (uint64_t)p);
        }
        if (r < st->n_rows && st->rows[r] == t) fill_logits(h, m->V, logits + (size_t)r++ * m->V);
    }
    if (r != st->n_rows) return g4_fail(err, "mock: rows not in token order");
    return 0;
}

void mock_exec_bind(mock_exec *m, g4_executor *ex) {
    *ex = (g4_executor){.ctx = m, .n_workers = 1, .vocab = m->V, .step = mock_step};
}

void mock_reference_logits(const mock_exec *m, const int32_t *tokens, int n, float *out) {
    uint64_t *vals = malloc((size_t)n * sizeof *vals);
    uint64_t acc_g = 0;
    for (int p = 0; p < n; p++) {
        vals[p] = value_at(tokens[p], p, acc_g);
        acc_g = mix(acc_g ^ vals[p]);
    }
    uint64_t acc_s = 0;
    int p = n - 1, lo = p - m->W + 1 < 0 ? 0 : p - m->W + 1;
    for (int q = lo; q < p; q++) acc_s = mix(acc_s ^ vals[q]);
    fill_logits(mix(vals[p] ^ mix(acc_s)), m->V, out);
    free(vals);
}
