/* safetensors.c — mmapped, validated safetensors reader (see safetensors.h).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data section; offsets are relative to its start (byte 8 + N).
 * A sharded checkpoint is model.safetensors.index.json {"weight_map": {name: shard file}} plus
 * the shards next to it. Every check named in the header comment of safetensors.h is done at
 * open time, so later code can trust shapes and pointers. Data bytes are never read here. */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_HEADER_BYTES ((uint64_t)100 << 20) /* the 31B header is ~150 KB */

typedef struct shard {
    char *path;
    void *map;
    size_t size;
} shard;

struct g4_safetensors {
    int n_shards;
    shard *shards;
    int n, cap;
    g4_st_tensor *t; /* sorted by name once open completes */
    bool sorted;
};

int64_t g4_st_numel(const g4_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int g4_st_count(const g4_safetensors *st) { return st->n; }
const g4_st_tensor *g4_st_at(const g4_safetensors *st, int i) { return (i >= 0 && i < st->n) ? &st->t[i] : NULL; }

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const g4_st_tensor *)a)->name, ((const g4_st_tensor *)b)->name);
}

const g4_st_tensor *g4_st_find(const g4_safetensors *st, const char *name) {
    g4_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, cmp_name);
}

void g4_st_close(g4_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int s = 0; s < st->n_shards; s++) {
        if (st->shards[s].map) munmap(st->shards[s].map, st->shards[s].size);
        free(st->shards[s].path);
    }
    free(st->shards);
    free(st->t);
    free(st);
}

/* ---- one shard ------------------------------------------------------------------------ */

static int map_file(shard *sh, g4_error *err) {
    int fd = open(sh->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return g4_fail(err, "%s: cannot open: %s", sh->path, strerror(errno));
    struct stat s;
    if (fstat(fd, &s) != 0) {
        int e = errno;
        close(fd);
        return g4_fail(err, "%s: fstat: %s", sh->path, strerror(e));
    }
    if (s.st_size < 8) {
        close(fd);
        return g4_fail(err, "%s: file is %lld bytes, shorter than the 8-byte header length", sh->path,
                       (long long)s.st_size);
    }
    sh->size = (size_t)s.st_size;
    void *m = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return g4_fail(err, "%s: mmap of %zu bytes: %s", sh->path, sh->size, strerror(e));
    sh->map = m;
    return 0;
}

static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (d < 0 || d != floor(d) || d > 9007199254740992.0) return false; /* 2^53 */
    *out = (uint64_t)d;
    return true;
}

static int push(g4_safetensors *st, g4_error *err) {
    if (st->n < st->cap) return 0;
    int cap = st->cap ? 2 * st->cap : 256;
    g4_st_tensor *t = realloc(st->t, (size_t)cap * sizeof *t);
    if (!t) return g4_fail(err, "safetensors: out of memory");
    st->t = t;
    st->cap = cap;
    return 0;
}

/* Parses one tensor entry `e` of shard s into st->t[st->n]. */
static int parse_entry(g4_safetensors *st, int s, const cJSON *e, size_t data_start, g4_error *err) {
    const char *path = st->shards[s].path, *name = e->string;
    if (!cJSON_IsObject(e)) return g4_fail(err, "%s: tensor %s: entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return g4_fail(err, "%s: tensor %s: needs string dtype, array shape and array data_offsets", path, name);
    if (push(st, err)) return -1;
    g4_st_tensor *t = &st->t[st->n];
    memset(t, 0, sizeof *t);
    if (g4_dtype_parse(dt->valuestring, &t->dtype))
        return g4_fail(err, "%s: tensor %s: unsupported dtype %s (supported: BF16, F16, F32, I32, I64)", path, name,
                       dt->valuestring);
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > G4_MAX_DIMS)
        return g4_fail(err, "%s: tensor %s: %d dimensions (max %d)", path, name, t->ndim, G4_MAX_DIMS);
    /* numel with overflow check: each dim < 2^40, product < 2^62 */
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (!json_u64(cJSON_GetArrayItem(sh, i), &d) || d >= ((uint64_t)1 << 40))
            return g4_fail(err, "%s: tensor %s: shape[%d] is not a sane non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > (((uint64_t)1 << 62) / d))
            return g4_fail(err, "%s: tensor %s: element count overflows", path, name);
        numel *= d;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &b) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &en) || en < b)
        return g4_fail(err, "%s: tensor %s: data_offsets must be [begin, end] with 0 <= begin <= end", path, name);
    uint64_t want = numel * g4_dtype_size(t->dtype), data_size = st->shards[s].size - data_start;
    if (en - b != want)
        return g4_fail(err,
                       "%s: tensor %s: dtype/shape mismatch: %s × %llu elements = %llu bytes, data_offsets span %llu",
                       path, name, g4_dtype_name(t->dtype), (unsigned long long)numel, (unsigned long long)want,
                       (unsigned long long)(en - b));
    if (en > data_size)
        return g4_fail(err, "%s: tensor %s: data_offsets [%llu, %llu] out of range: data section is %llu bytes", path,
                       name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    t->name = strdup(name);
    if (!t->name) return g4_fail(err, "safetensors: out of memory");
    t->data = (const char *)st->shards[s].map + data_start + b;
    t->nbytes = (size_t)want;
    t->shard = s;
    st->n++;
    return 0;
}

static int cmp_data(const void *a, const void *b) {
    const char *x = (const char *)(*(const g4_st_tensor *const *)a)->data;
    const char *y = (const char *)(*(const g4_st_tensor *const *)b)->data;
    return x < y ? -1 : x > y;
}

/* No two tensors of [first, st->n) may share a byte. */
static int check_overlap(g4_safetensors *st, int first, g4_error *err) {
    int n = st->n - first;
    if (n < 2) return 0;
    const g4_st_tensor **v = malloc((size_t)n * sizeof *v);
    if (!v) return g4_fail(err, "safetensors: out of memory");
    for (int i = 0; i < n; i++) v[i] = &st->t[first + i];
    qsort(v, (size_t)n, sizeof *v, cmp_data);
    int rc = 0;
    const g4_st_tensor *prev = NULL; /* the tensor reaching furthest so far */
    for (int i = 0; i < n && !rc; i++) {
        if (v[i]->nbytes == 0) continue;
        if (prev && (const char *)v[i]->data < (const char *)prev->data + prev->nbytes)
            rc = g4_fail(err, "%s: tensors %s and %s overlap in the data section", st->shards[v[i]->shard].path,
                         prev->name, v[i]->name);
        if (!prev || (const char *)v[i]->data + v[i]->nbytes > (const char *)prev->data + prev->nbytes) prev = v[i];
    }
    free(v);
    return rc;
}

/* Maps shard s and appends its tensors. */
static int load_shard(g4_safetensors *st, int s, g4_error *err) {
    shard *sh = &st->shards[s];
    if (map_file(sh, err)) return -1;
    uint64_t hlen = 0;
    const unsigned char *p = sh->map;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen < 2 || hlen > MAX_HEADER_BYTES || hlen > sh->size - 8)
        return g4_fail(err, "%s: bad header length %llu (file is %zu bytes)", sh->path, (unsigned long long)hlen,
                       sh->size);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return g4_fail(err, "%s: header is not a well-formed JSON object", sh->path);
    }
    int first = st->n, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if ((rc = parse_entry(st, s, e, 8 + (size_t)hlen, err))) break;
    }
    cJSON_Delete(root);
    return rc ? rc : check_overlap(st, first, err);
}

/* ---- opening a path --------------------------------------------------------------------- */

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, file);
    return s;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static bool is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static char *read_text(const char *path, g4_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        g4_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && n < (256 << 20)) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (!buf) g4_fail(err, "%s: cannot read", path);
    else buf[n] = 0;
    return buf;
}

static int add_shard(g4_safetensors *st, char *path, g4_error *err) {
    shard *s = realloc(st->shards, (size_t)(st->n_shards + 1) * sizeof *s);
    if (!s) {
        free(path);
        return g4_fail(err, "safetensors: out of memory");
    }
    st->shards = s;
    st->shards[st->n_shards++] = (shard){.path = path};
    return 0;
}

/* Sorts the table by name (for g4_st_find) and rejects any name seen twice. */
static int sort_unique(g4_safetensors *st, g4_error *err) {
    if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
    st->sorted = true;
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0)
            return g4_fail(err, "tensor %s appears twice (in %s and %s)", st->t[i].name,
                           st->shards[st->t[i - 1].shard].path, st->shards[st->t[i].shard].path);
    return 0;
}

/* Index: opens each distinct shard of weight_map, then cross-checks both directions. */
static int open_index(g4_safetensors *st, const char *index_path, g4_error *err) {
    char *text = read_text(index_path, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return g4_fail(err, "%s: not a JSON object with a \"weight_map\" object", index_path);
    }
    char *dir = dir_of(index_path);
    int rc = dir ? 0 : g4_fail(err, "safetensors: out of memory");
    const cJSON *e;
    /* distinct shard files, in first-mention order */
    cJSON_ArrayForEach(e, wm) {
        if (rc) break;
        if (!cJSON_IsString(e) || !e->valuestring[0] || strstr(e->valuestring, "..")) {
            rc = g4_fail(err, "%s: weight_map[%s]: expected a shard file name", index_path, e->string);
            break;
        }
        char *p = join(dir, e->valuestring);
        if (!p) {
            rc = g4_fail(err, "safetensors: out of memory");
            break;
        }
        bool seen = false;
        for (int s = 0; s < st->n_shards && !seen; s++) seen = strcmp(st->shards[s].path, p) == 0;
        if (seen) free(p);
        else rc = add_shard(st, p, err);
    }
    for (int s = 0; s < st->n_shards && !rc; s++) rc = load_shard(st, s, err);
    if (!rc) rc = sort_unique(st, err);
    /* every shard tensor is listed in the index under its own shard ... */
    int listed = 0;
    for (int i = 0; i < st->n && !rc; i++) {
        const g4_st_tensor *t = &st->t[i];
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(wm, t->name);
        const char *base = st->shards[t->shard].path + strlen(dir) + 1;
        if (!cJSON_IsString(w))
            rc = g4_fail(err, "%s: tensor %s (in %s) is not listed in the index", index_path, t->name, base);
        else if (strcmp(w->valuestring, base) != 0)
            rc = g4_fail(err, "%s: tensor %s: index says shard %s, found in %s", index_path, t->name, w->valuestring,
                         base);
        else listed++;
    }
    /* ... and every index entry is in its shard (names are unique by now, so equal counts
     * mean equal sets; cJSON keeps duplicate keys, so a name listed twice is caught too). */
    if (!rc && listed != cJSON_GetArraySize(wm)) {
        cJSON_ArrayForEach(e, wm) {
            if (!g4_st_find(st, e->string)) {
                rc = g4_fail(err, "%s: tensor %s is listed in the index but missing from shard %s", index_path,
                             e->string, e->valuestring);
                break;
            }
        }
        if (!rc) rc = g4_fail(err, "%s: weight_map lists a tensor name twice", index_path);
    }
    free(dir);
    cJSON_Delete(root);
    return rc;
}

g4_safetensors *g4_st_open(const char *path, g4_error *err) {
    g4_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        g4_fail(err, "safetensors: out of memory");
        return NULL;
    }
    struct stat s;
    int rc;
    if (stat(path, &s) != 0) {
        rc = g4_fail(err, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(s.st_mode)) {
        char *idx = join(path, "model.safetensors.index.json"), *one = join(path, "model.safetensors");
        if (!idx || !one) rc = g4_fail(err, "safetensors: out of memory");
        else if (is_file(idx)) rc = open_index(st, idx, err);
        else if (is_file(one)) {
            rc = add_shard(st, one, err);
            one = NULL;
            if (!rc) rc = load_shard(st, 0, err);
        } else rc = g4_fail(err, "%s: holds neither model.safetensors.index.json nor model.safetensors", path);
        free(idx);
        free(one);
    } else {
        size_t n = strlen(path);
        if (n >= 5 && strcmp(path + n - 5, ".json") == 0) {
            rc = open_index(st, path, err);
        } else {
            char *p = strdup(path);
            rc = p ? add_shard(st, p, err) : g4_fail(err, "safetensors: out of memory");
            if (!rc) rc = load_shard(st, 0, err);
        }
    }
    if (!rc && !st->sorted) rc = sort_unique(st, err);
    if (rc) {
        g4_st_close(st);
        return NULL;
    }
    return st;
}
