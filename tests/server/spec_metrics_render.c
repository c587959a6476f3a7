/* spec_metrics_render.c — prints /metrics as g4serve renders it for given speculative decoding
 * counters, for test_spec_config.py to read with prometheus_client (the engine that fills the
 * counters is not needed to check how they are exposed).
 * Usage: spec_metrics_render K DRAFTS DRAFT_TOKENS ACCEPTED [ACCEPTED_AT_0 ...]
 * (K = the configured proposal length, 0 = speculation off). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics/metrics.h"

static int number(const char *s, unsigned long long *out) {
    char *end;
    *out = strtoull(s, &end, 10);
    return *s && !*end ? 0 : -1;
}

int main(int argc, char **argv) {
    unsigned long long v[4 + G4_SPEC_MAX_TOKENS] = {0};
    if (argc < 5 || argc > 5 + G4_SPEC_MAX_TOKENS) {
        fprintf(stderr, "usage: %s K DRAFTS DRAFT_TOKENS ACCEPTED [ACCEPTED_AT_0 ...]\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (number(argv[i], &v[i - 1]) < 0) {
            fprintf(stderr, "%s: not a number: %s\n", argv[0], argv[i]);
            return 2;
        }
    g4_engine_stats st;
    memset(&st, 0, sizeof st);
    st.spec_drafts = v[1];
    st.spec_draft_tokens = v[2];
    st.spec_accepted_tokens = v[3];
    for (int i = 0; i < G4_SPEC_MAX_TOKENS; i++) st.spec_accepted_per_pos[i] = v[4 + i];
    g4_metrics *m = g4_metrics_create("spec-test", 4096);
    if (!m) return 1;
    g4_metrics_set_spec_positions(m, (int)v[0]);
    g4_strbuf out = {0};
    int rc = g4_metrics_render(m, &st, 8, &out);
    if (rc == 0) fwrite(out.data, 1, out.len, stdout);
    g4_strbuf_free(&out);
    g4_metrics_free(m);
    return rc ? 1 : 0;
}
