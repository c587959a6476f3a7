/* safetensors_write.c — builds a safetensors file in memory and writes it (see safetensors_write.h).
 *
 * Tensors keep insertion order in the header and their data is packed in that order.
 * A tensor added with data == NULL gets no bytes: the file is extended with ftruncate, so
 * its region is a hole (reads as zeros, takes no disk). Not a general serializer: no
 * alignment padding between tensors, one file per writer. */
#include "model/safetensors_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct entry {
    char *name;
    g4_dtype dtype;
    int ndim;
    int64_t shape[G4_MAX_DIMS];
    void *data; /* NULL: sparse */
    uint64_t nbytes;
} entry;

struct g4_st_writer {
    int n, cap;
    entry *e;
};

/* Growable text buffer for the header. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(sbuf *b, const char *fmt, unsigned long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    put(b, tmp, (size_t)n);
}

/* JSON string with the escapes JSON requires. */
static void put_json_string(sbuf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(b, esc, 2);
        } else if (c < 0x20) {
            putf(b, "\\u%04llx", c);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    puts_(b, "\"");
}

g4_st_writer *g4_stw_create(void) { return calloc(1, sizeof(g4_st_writer)); }

void g4_stw_free(g4_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    free(w->e);
    free(w);
}

int g4_stw_add(g4_st_writer *w, const char *name, g4_dtype dt, int ndim, const int64_t *shape, const void *data,
               g4_error *err) {
    if ((unsigned)dt >= G4_DT_COUNT) return g4_fail(err, "safetensors writer: tensor %s: bad dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > G4_MAX_DIMS)
        return g4_fail(err, "safetensors writer: tensor %s: %d dimensions (max %d)", name, ndim, G4_MAX_DIMS);
    if (strcmp(name, "__metadata__") == 0) return g4_fail(err, "safetensors writer: reserved tensor name __metadata__");
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return g4_fail(err, "safetensors writer: tensor %s: negative dimension", name);
        numel *= (uint64_t)shape[i];
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        entry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return g4_fail(err, "safetensors writer: out of memory");
        w->e = e;
        w->cap = cap;
    }
    entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->dtype = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = numel * g4_dtype_size(dt);
    e->name = strdup(name);
    if (!e->name) return g4_fail(err, "safetensors writer: out of memory");
    if (data && e->nbytes) {
        e->data = malloc((size_t)e->nbytes);
        if (!e->data) {
            free(e->name);
            return g4_fail(err, "safetensors writer: out of memory for tensor %s", name);
        }
        memcpy(e->data, data, (size_t)e->nbytes);
    }
    w->n++;
    return 0;
}

static int write_all(int fd, const void *p, size_t n, off_t off) {
    const char *c = p;
    while (n) {
        ssize_t k = pwrite(fd, c, n, off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

int g4_stw_write(const g4_st_writer *w, const char *path, g4_error *err) {
    sbuf h = {0};
    puts_(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const entry *e = &w->e[i];
        puts_(&h, ",");
        put_json_string(&h, e->name);
        puts_(&h, ":{\"dtype\":\"");
        puts_(&h, g4_dtype_name(e->dtype));
        puts_(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) putf(&h, d ? ",%llu" : "%llu", (unsigned long long)e->shape[d]);
        putf(&h, "],\"data_offsets\":[%llu,", off);
        off += e->nbytes;
        putf(&h, "%llu]}", off);
    }
    puts_(&h, "}");
    while (h.n % 8) puts_(&h, " ");
    if (h.oom) {
        free(h.s);
        return g4_fail(err, "safetensors writer: out of memory");
    }

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(h.s);
        return g4_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int rc = write_all(fd, len, 8, 0) || write_all(fd, h.s, h.n, 8);
    uint64_t pos = 8 + h.n;
    for (int i = 0; i < w->n && !rc; i++) {
        if (w->e[i].data) rc = write_all(fd, w->e[i].data, (size_t)w->e[i].nbytes, (off_t)pos);
        pos += w->e[i].nbytes;
    }
    if (!rc) rc = ftruncate(fd, (off_t)pos); /* sparse tail for data == NULL tensors */
    int e = errno;
    if (close(fd) != 0 && !rc) {
        rc = -1;
        e = errno;
    }
    free(h.s);
    if (rc) return g4_fail(err, "%s: write failed: %s", path, strerror(e));
    return 0;
}
