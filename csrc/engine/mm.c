/* mm.c — images of engine sequences: the copy made at submit, prefix keys, the chunk rule and the
 * step's image runs (see mm.h). Engine thread only, except g4_seq_mm_copy (submit's thread). */
#include "engine/mm.h"

#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "base/rng.h"
#include "engine/engine_impl.h"

int g4_mm_item_copy(g4_mm_item *dst, const g4_mm_item *src) {
    size_t bytes = (size_t)src->ph * (size_t)src->pw * 768 * sizeof(float); /* 768 values a patch */
    float *p = malloc(bytes);
    if (!p) return -1;
    memcpy(p, src->patches, bytes);
    *dst = *src;
    dst->patches = p;
    return 0;
}

g4_seq_mm *g4_seq_mm_copy(const g4_mm_item *items, int n, g4_error *err) {
    g4_seq_mm *mm = calloc(1, sizeof *mm);
    if (mm) mm->im = calloc((size_t)n, sizeof *mm->im);
    if (!mm || !mm->im) {
        free(mm);
        g4_fail(err, "engine: out of memory for %d images", n);
        return NULL;
    }
    for (int i = 0; i < n; i++, mm->n++)
        if (g4_mm_item_copy(&mm->im[i].item, &items[i])) {
            g4_seq_mm_free(mm);
            g4_fail(err, "engine: out of memory for image %d's patches", i);
            return NULL;
        }
    return mm;
}

void g4_seq_mm_free(g4_seq_mm *mm) {
    if (!mm) return;
    for (int i = 0; i < mm->n; i++) free((void *)mm->im[i].item.patches);
    free(mm->im);
    free(mm);
}

uint64_t g4_seq_mm_key(const g4_seq_mm *mm, uint64_t text_key, int k, int B) {
    if (!mm) return text_key;
    uint64_t h = text_key;
    int lo = k * B, hi = lo + B;
    for (int i = 0; i < mm->n; i++) {
        const g4_mm_item *it = &mm->im[i].item;
        if (it->pos >= hi || it->pos + it->n_tokens <= lo) continue;
        h = g4_mix64(h ^ it->hash[0] ^ ((uint64_t)(uint32_t)(it->pos - lo) << 1));
        h = g4_mix64(h ^ it->hash[1]);
    }
    return h;
}

int g4_seq_mm_chunk(const g4_seq_mm *mm, int start, int chunk) {
    if (!mm) return chunk;
    int end = start + chunk;
    for (int i = 0; i < mm->n; i++) {
        int a = mm->im[i].item.pos, b = a + mm->im[i].item.n_tokens;
        if (a < end && end < b) return a > start ? a - start : 0;
    }
    return chunk;
}

/* The soft tokens of image im, pinned: from the cache, or encoded now. */
static const float *soft_tokens(g4_engine *e, g4_seq_image *im, g4_error *err) {
    if (im->entry) return im->entry->rows;
    const g4_mm_item *it = &im->item;
    g4_enc_entry *en = g4_enc_cache_get(&e->mm_cache, it->hash, it->n_tokens);
    if (en) {
        e->st.mm_cache_hits++;
    } else {
        en = g4_enc_cache_put(&e->mm_cache, it->hash, it->n_tokens, e->ex.hidden);
        if (!en) {
            g4_fail(err, "engine: out of memory for an image's %d soft tokens", it->n_tokens);
            return NULL;
        }
        if (e->ex.encode(e->ex.ctx, it, en->rows, err)) {
            g4_enc_cache_drop(&e->mm_cache, en);
            g4_fail_prefix(err, "vision encoder");
            return NULL;
        }
        e->st.mm_encoded++;
    }
    im->entry = en;
    return en->rows;
}

int g4_engine_mm_step(g4_engine *e, g4_step *st, g4_error *err) {
    g4_scheduler *s = &e->sched;
    st->n_images = 0;
    st->images = NULL;
    int n = 0, t0 = 0;
    for (int b = 0; b < s->n_batch; t0 += s->batch[b]->chunk, b++) {
        g4_seq *q = s->batch[b];
        if (!q->mm) continue;
        int from = q->n_computed, to = q->n_computed + q->chunk;
        for (int i = 0; i < q->mm->n; i++) {
            g4_seq_image *im = &q->mm->im[i];
            int a = im->item.pos, z = a + im->item.n_tokens;
            if (z <= from || a >= to) continue;
            G4_INVARIANT(z <= to, "engine: sequence %llu's chunk %d..%d ends inside image %d (%d..%d)",
                         (unsigned long long)q->id, from, to - 1, i, a, z - 1);
            if (n == e->cap_mm_step) {
                int cap = n ? 2 * n : 16;
                g4_step_image *p = realloc(e->mm_step, (size_t)cap * sizeof *p);
                if (!p) return g4_fail(err, "engine: out of memory for a step's image runs");
                e->mm_step = p;
                e->cap_mm_step = cap;
            }
            const float *rows = soft_tokens(e, im, err);
            if (!rows) return -1;
            int first = a > from ? a : from; /* after a prefix hit the run may start inside the image */
            e->mm_step[n++] = (g4_step_image){.first = t0 + first - from,
                                              .n = z - first,
                                              .embed = rows + (size_t)(first - a) * e->ex.hidden};
        }
    }
    st->n_images = n;
    st->images = n ? e->mm_step : NULL;
    return 0;
}

void g4_engine_mm_step_done(g4_engine *e) {
    g4_scheduler *s = &e->sched;
    for (int b = 0; b < s->n_batch; b++)
        if (s->batch[b]->mm)
            for (int i = 0; i < s->batch[b]->mm->n; i++) s->batch[b]->mm->im[i].entry = NULL;
    g4_enc_cache_unpin_all(&e->mm_cache);
}
