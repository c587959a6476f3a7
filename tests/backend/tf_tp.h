/* tf_tp.h — teacher-forced runs of a tensor-parallel group (tf_compare.h's stream, routing
 * record / replay and planted bugs on every rank), for test_gpu_tp.c and its CPU demonstration
 * in test_bf16_oracle.c. Needs g4parallel.
 *
 * Why a group for the reference too: with t = 2 each rank's partial o-projection and FFN outputs
 * are bf16 before the all-reduce, and the sum is rounded again; a one-rank model rounds the full
 * sum once. That is a rounding-point difference, not summation order, and on the tiny models it
 * is as large as the tolerance (5.3–5.6 % measured), so the bf16 reference of a t-rank CUDA group
 * is a t-rank CPU group in bf16 mode: same shards, same rounding points. */
#ifndef G4_TESTS_BACKEND_TF_TP_H
#define G4_TESTS_BACKEND_TF_TP_H

#include "backend/cpu/cpu_backend.h"
#include "parallel/tp.h"
#include "tf_compare.h"

/* Opens dir on t ranks of `backend` (with tf_backend_opts), switches CPU ranks to *cpu (NULL: leave them as created),
 * wraps every rank in place, runs the stream (routing counted and recorded on rank 0; every rank
 * replays the whole log), closes the group. 0, or -1 with err set. */
static inline int tf_tp_run(const char *dir, const char *backend, int t, const g4_model_opts *o, const g4_cpu_opts *cpu,
                            tf_route_mode route, tf_bug bug, const tf_stream *st, float *logits, g4_error *err) {
    if (t < 1 || t > 8) return g4_fail(err, "tf_tp_run: t = %d", t);
    g4_tp *tp = g4_tp_open(dir, backend, &tf_backend_opts, t, o, err);
    if (!tp) return -1;
    tf_wrap w[8];
    int rc = 0;
    for (int r = 0; r < t; r++) {
        g4_backend *b = g4_tp_model(tp, r)->be;
        if (cpu && rc == 0) rc = g4_backend_cpu_set_opts(b, cpu, err); /* the tiny checkpoints are bf16 */
        tf_wrap_in_place(&w[r], b);
    }
    tf_cfg.record_ctx = g4_tp_model(tp, 0)->be->ctx;
    tf_route_begin(route);
    tf_cfg.bug = bug, tf_cfg.layer = bug == TF_BUG_PROPE ? -1 : 3, tf_cfg.head = 1;
    if (rc == 0) rc = tf_run(g4_tp_model(tp, 0), g4_tp_step, tp, st, logits, err);
    tf_cfg.bug = TF_BUG_NONE;
    tf_cfg.record_ctx = NULL;
    for (int r = 0; r < t; r++) tf_unwrap(&w[r]);
    g4_tp_close(tp);
    return rc ? -1 : 0;
}

#endif
