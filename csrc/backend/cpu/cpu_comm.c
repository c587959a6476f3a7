/* cpu_comm.c — the CPU backend's communicator (base/comm.h): in-process all-reduce for
 * tensor parallelism, ranks are threads of this process; f32 buffers only.
 *
 * Each rank publishes its buffer, then rank k sums slice k of every rank's buffer in rank order
 * 0..t−1 into a shared result, and every rank copies the result back: a reduce-scatter +
 * all-gather with two barriers. Deterministic, and the same bits on every rank. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

typedef struct threads_comm {
    g4_comm pub;
    pthread_barrier_t barrier;
    float **bufs;               /* [size] published buffers */
    float *result;              /* shared sum */
    size_t cap;                 /* floats in result */
    pthread_mutex_t grow;
} threads_comm;

static int threads_all_reduce(g4_comm *c, int rank, void *buf, size_t n, g4_dtype dt, g4_error *err) {
    threads_comm *tc = (threads_comm *)c;
    int t = c->size;
    if (dt != G4_DT_F32) return g4_fail(err, "thread all-reduce: only f32 buffers (got %s)", g4_dtype_name(dt));
    if (rank < 0 || rank >= t) return g4_fail(err, "thread all-reduce: rank %d of %d", rank, t);
    if (t == 1) return 0;
    tc->bufs[rank] = buf;
    if (rank == 0 && n > tc->cap) { /* only rank 0 grows, before the first barrier releases anyone */
        float *r = realloc(tc->result, n * sizeof *r);
        if (r) tc->result = r, tc->cap = n;
    }
    pthread_barrier_wait(&tc->barrier);
    if (n > tc->cap) { /* every rank sees the same outcome of rank 0's realloc */
        pthread_barrier_wait(&tc->barrier);
        return g4_fail(err, "thread all-reduce: out of memory for %zu floats", n);
    }
    size_t lo = n * (size_t)rank / t, hi = n * (size_t)(rank + 1) / t;
    for (size_t i = lo; i < hi; i++) {
        float s = 0;
        for (int r = 0; r < t; r++) s += tc->bufs[r][i];
        tc->result[i] = s;
    }
    pthread_barrier_wait(&tc->barrier);
    memcpy(buf, tc->result, n * sizeof(float));
    pthread_barrier_wait(&tc->barrier); /* nobody reuses result before all have copied */
    return 0;
}

static void threads_destroy(g4_comm *c) {
    threads_comm *tc = (threads_comm *)c;
    pthread_barrier_destroy(&tc->barrier);
    free(tc->bufs);
    free(tc->result);
    free(tc);
}

g4_comm *g4_cpu_comm_create(int size, g4_error *err) {
    if (size < 1) {
        g4_fail(err, "thread comm: size %d", size);
        return NULL;
    }
    threads_comm *tc = calloc(1, sizeof *tc);
    if (!tc || !(tc->bufs = calloc((size_t)size, sizeof *tc->bufs))) {
        free(tc);
        g4_fail(err, "thread comm: out of memory");
        return NULL;
    }
    if (pthread_barrier_init(&tc->barrier, NULL, (unsigned)size)) {
        free(tc->bufs);
        free(tc);
        g4_fail(err, "thread comm: cannot create a barrier for %d threads", size);
        return NULL;
    }
    tc->pub.size = size;
    tc->pub.ctx = tc;
    tc->pub.all_reduce_sum = threads_all_reduce;
    tc->pub.destroy = threads_destroy;
    return &tc->pub;
}
