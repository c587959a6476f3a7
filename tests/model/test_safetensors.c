/* test_safetensors.c — safetensors writer → reader round trip, sharded indexes, sparse files,
 * and every header corruption rejected with the right message.
 *
 * The round trip is checked two ways: through g4_st_open, and by reading the raw file bytes
 * against the layout the format defines (8-byte LE length, header padded to 8, data packed in
 * insertion order), so a reader and writer that agree on a wrong layout would still fail.
 * Corrupt files are written byte by byte here, not with the writer. Works in a temp dir. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model/safetensors.h"
#include "model/safetensors_write.h"

static char dir[64];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *pathf(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_bytes(const char *name, const void *p, size_t n) {
    FILE *f = fopen(pathf(name), "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* A file with the given header text (hlen = strlen unless overridden) and data_len zero bytes. */
static void write_raw(const char *name, const char *header, uint64_t hlen_override, size_t data_len) {
    size_t h = strlen(header);
    uint64_t hl = hlen_override ? hlen_override : h;
    size_t n = 8 + h + data_len;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    write_bytes(name, b, n);
    free(b);
}

static void expect_fail(const char *what, const char *path, const char *needle1, const char *needle2) {
    g4_error err = {{0}};
    g4_safetensors *st = g4_st_open(path, &err);
    CHECK(st == NULL && strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2)),
          "%s: expected failure naming \"%s\"%s%s, got \"%s\"", what, needle1, needle2 ? " and " : "",
          needle2 ? needle2 : "", st ? "(opened)" : err.msg);
    g4_st_close(st);
}

typedef struct spec {
    const char *name;
    g4_dtype dt;
    int ndim;
    int64_t shape[4];
} spec;

static const spec round_trip[] = {
    {"model.embed.weight", G4_DT_BF16, 2, {37, 16}},
    {"a.f16", G4_DT_F16, 3, {3, 5, 7}},
    {"b.f32", G4_DT_F32, 1, {129}},
    {"c.i32", G4_DT_I32, 2, {4, 9}},
    {"d.i64", G4_DT_I64, 4, {2, 3, 2, 5}},
    {"e.scalar", G4_DT_F32, 0, {0}},
    {"f.empty", G4_DT_BF16, 2, {0, 8}},
    {"g.\"quoted\\name", G4_DT_BF16, 1, {1}},
};
#define N_RT (int)(sizeof round_trip / sizeof round_trip[0])

static const size_t dsize[] = {2, 2, 4, 4, 8};

static size_t nbytes_of(const spec *s) {
    size_t n = dsize[s->dt];
    for (int i = 0; i < s->ndim; i++) n *= (size_t)s->shape[i];
    return n;
}

static void test_round_trip(void) {
    unsigned char *data[N_RT];
    g4_st_writer *w = g4_stw_create();
    g4_error err = {{0}};
    for (int i = 0; i < N_RT; i++) {
        size_t n = nbytes_of(&round_trip[i]);
        data[i] = malloc(n + 1);
        for (size_t j = 0; j < n; j++) data[i][j] = (unsigned char)(next_rand() | 1);
        CHECK(g4_stw_add(w, round_trip[i].name, round_trip[i].dt, round_trip[i].ndim, round_trip[i].shape, data[i],
                         &err) == 0,
              "add %s: %s", round_trip[i].name, err.msg);
    }
    CHECK(g4_stw_write(w, pathf("rt.safetensors"), &err) == 0, "write: %s", err.msg);
    g4_stw_free(w);

    /* raw layout check */
    FILE *f = fopen(pathf("rt.safetensors"), "rb");
    if (!f) {
        CHECK(f != NULL, "rt file");
        return;
    }
    fseek(f, 0, SEEK_END);
    long fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *raw = malloc((size_t)fsize);
    CHECK(fread(raw, 1, (size_t)fsize, f) == (size_t)fsize, "read raw");
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
    CHECK(hl % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)hl);
    CHECK(raw[8] == '{' && (raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}'), "header is JSON padded with spaces");
    size_t off = 8 + hl, total = 0;
    for (int i = 0; i < N_RT; i++) {
        size_t n = nbytes_of(&round_trip[i]);
        CHECK(off + n <= (size_t)fsize && memcmp(raw + off, data[i], n) == 0, "raw bytes of %s packed in order",
              round_trip[i].name);
        off += n;
        total += n;
    }
    CHECK((size_t)fsize == 8 + hl + total, "file size %ld", fsize);
    free(raw);

    /* reader: path to the file and to its directory (model.safetensors absent → file path only) */
    g4_safetensors *st = g4_st_open(pathf("rt.safetensors"), &err);
    if (!st) {
        CHECK(st != NULL, "open round trip: %s", err.msg);
        return;
    }
    CHECK(g4_st_count(st) == N_RT, "count %d (metadata skipped)", g4_st_count(st));
    for (int i = 1; i < g4_st_count(st); i++)
        CHECK(strcmp(g4_st_at(st, i - 1)->name, g4_st_at(st, i)->name) < 0, "table sorted at %d", i);
    for (int i = 0; i < N_RT; i++) {
        const spec *s = &round_trip[i];
        const g4_st_tensor *t = g4_st_find(st, s->name);
        CHECK(t != NULL, "find %s", s->name);
        if (!t) continue;
        bool shape_ok = t->ndim == s->ndim;
        for (int d = 0; shape_ok && d < s->ndim; d++) shape_ok = t->shape[d] == s->shape[d];
        CHECK(t->dtype == s->dt && shape_ok, "%s dtype/shape", s->name);
        CHECK(t->nbytes == nbytes_of(s) && (size_t)g4_st_numel(t) * g4_dtype_size(t->dtype) == t->nbytes,
              "%s nbytes %zu", s->name, t->nbytes);
        CHECK(t->nbytes == 0 || memcmp(t->data, data[i], t->nbytes) == 0, "%s data", s->name);
        CHECK(t->shard == 0, "%s shard", s->name);
        CHECK(strcmp(g4_dtype_name(s->dt), (const char *[]){"BF16", "F16", "F32", "I32", "I64"}[s->dt]) == 0,
              "dtype name");
    }
    CHECK(g4_st_find(st, "model.embed") == NULL && g4_st_find(st, "zzz") == NULL && g4_st_find(st, "") == NULL,
          "absent names not found");
    g4_st_close(st);
    for (int i = 0; i < N_RT; i++) free(data[i]);
}

/* Sparse: a 4 GiB tensor with data == NULL costs no disk and maps fine. */
static void test_sparse(void) {
    g4_st_writer *w = g4_stw_create();
    g4_error err = {{0}};
    const int64_t big[2] = {1 << 21, 1024}, small[1] = {5};
    const float five[5] = {1, 2, 3, 4, 5};
    CHECK(g4_stw_add(w, "big", G4_DT_BF16, 2, big, NULL, &err) == 0, "add big");
    CHECK(g4_stw_add(w, "small", G4_DT_F32, 1, small, five, &err) == 0, "add small");
    CHECK(g4_stw_write(w, pathf("model.safetensors"), &err) == 0, "write sparse: %s", err.msg);
    g4_stw_free(w);
    struct stat s;
    CHECK(stat(pathf("model.safetensors"), &s) == 0 && s.st_size > ((off_t)4 << 30) &&
              (off_t)s.st_blocks * 512 < ((off_t)1 << 20),
          "sparse: size %lld, allocated %lld", (long long)s.st_size, (long long)s.st_blocks * 512);
    g4_safetensors *st = g4_st_open(dir, &err); /* directory holding model.safetensors */
    CHECK(st != NULL, "open dir with model.safetensors: %s", err.msg);
    if (st) {
        const g4_st_tensor *t = g4_st_find(st, "small");
        CHECK(t && memcmp(t->data, five, sizeof five) == 0, "data after a hole");
        CHECK(g4_st_find(st, "big") && g4_st_find(st, "big")->nbytes == ((size_t)1 << 32), "big nbytes");
    }
    g4_st_close(st);
    unlink(pathf("model.safetensors"));
}

static int write_shard(const char *name, const char *const *names, int n, g4_dtype dt, float base) {
    g4_st_writer *w = g4_stw_create();
    g4_error err = {{0}};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const int64_t shape[1] = {4};
        const float v[4] = {base + (float)i, 2, 3, 4};
        rc = g4_stw_add(w, names[i], dt, 1, shape, v, &err);
    }
    if (!rc) rc = g4_stw_write(w, pathf(name), &err);
    g4_stw_free(w);
    return rc;
}

static void write_index(const char *name, const char *weight_map) {
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"metadata\":{\"total_size\":0},\"weight_map\":{%s}}", weight_map);
    write_bytes(name, buf, strlen(buf));
}

static void test_sharded(void) {
    const char *a[] = {"x.0", "x.1", "y"}, *b[] = {"x.2", "z"};
    CHECK(write_shard("m-00001-of-00002.safetensors", a, 3, G4_DT_F32, 10) == 0, "shard 1");
    CHECK(write_shard("m-00002-of-00002.safetensors", b, 2, G4_DT_F32, 20) == 0, "shard 2");
    const char *good = "\"x.0\":\"m-00001-of-00002.safetensors\",\"x.1\":\"m-00001-of-00002.safetensors\","
                       "\"y\":\"m-00001-of-00002.safetensors\",\"x.2\":\"m-00002-of-00002.safetensors\","
                       "\"z\":\"m-00002-of-00002.safetensors\"";
    write_index("model.safetensors.index.json", good);
    g4_error err = {{0}};
    for (int via_dir = 0; via_dir < 2; via_dir++) {
        g4_safetensors *st = g4_st_open(via_dir ? dir : pathf("model.safetensors.index.json"), &err);
        CHECK(st != NULL, "open index (via_dir %d): %s", via_dir, err.msg);
        if (!st) continue;
        CHECK(g4_st_count(st) == 5, "sharded count %d", g4_st_count(st));
        const g4_st_tensor *y = g4_st_find(st, "y"), *z = g4_st_find(st, "z");
        CHECK(y && z && y->shard != z->shard, "shards differ");
        CHECK(y && ((const float *)y->data)[0] == 12.0f, "y data from shard 1");
        CHECK(z && ((const float *)z->data)[0] == 21.0f, "z data from shard 2");
        g4_st_close(st);
    }
    /* index lists a tensor its shard lacks */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s,\"w\":\"m-00002-of-00002.safetensors\"", good);
    write_index("bad1.index.json", buf);
    expect_fail("index entry missing from shard", pathf("bad1.index.json"), "tensor w", "missing from shard");
    /* shard holds a tensor the index does not list */
    write_index("bad2.index.json", strstr(good, "\"x.1\""));
    expect_fail("shard tensor not in index", pathf("bad2.index.json"), "tensor x.0", "not listed in the index");
    /* index names the wrong shard */
    snprintf(buf, sizeof buf, "%s", good);
    memcpy(strstr(buf, "\"z\":\"m-00002") + 5, "m-00001", 7);
    write_index("bad3.index.json", buf);
    expect_fail("wrong shard in index", pathf("bad3.index.json"), "tensor z", "index says shard");
    /* the same name in two shards */
    const char *c[] = {"y", "q"};
    CHECK(write_shard("m-dup.safetensors", c, 2, G4_DT_F32, 30) == 0, "dup shard");
    snprintf(buf, sizeof buf, "%s,\"q\":\"m-dup.safetensors\"", good);
    write_index("bad4.index.json", buf);
    expect_fail("duplicate across shards", pathf("bad4.index.json"), "tensor y appears twice", "m-dup.safetensors");
    /* a shard file that does not exist */
    write_index("bad5.index.json", "\"y\":\"nope.safetensors\"");
    expect_fail("missing shard file", pathf("bad5.index.json"), "nope.safetensors", NULL);
    write_index("bad6.index.json", "\"y\":\"../m-00001-of-00002.safetensors\"");
    expect_fail("shard outside the directory", pathf("bad6.index.json"), "weight_map[y]", NULL);
    write_bytes("bad7.index.json", "{\"weight_map\": [", 16);
    expect_fail("bad index JSON", pathf("bad7.index.json"), "weight_map", NULL);
}

static void test_corruptions(void) {
    /* a valid baseline first, so the failures below are caused by the one change each makes */
    const char *ok =
        "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}";
    write_raw("ok.safetensors", ok, 0, 24);
    g4_error err = {{0}};
    g4_safetensors *st = g4_st_open(pathf("ok.safetensors"), &err);
    CHECK(st && g4_st_count(st) == 2, "baseline opens: %s", err.msg);
    g4_st_close(st);

    write_raw("hlen.safetensors", ok, 1u << 20, 24);
    expect_fail("header length past the file", pathf("hlen.safetensors"), "bad header length", NULL);
    write_raw("hlen0.safetensors", ok, (uint64_t)1 << 62, 24);
    expect_fail("absurd header length", pathf("hlen0.safetensors"), "bad header length", NULL);
    write_bytes("tiny.safetensors", "\x08\0\0", 3);
    expect_fail("file shorter than 8 bytes", pathf("tiny.safetensors"), "shorter than the 8-byte", NULL);
    write_raw("trunc.safetensors", ok, 0, 20);
    expect_fail("truncated data section", pathf("trunc.safetensors"), "tensor b", "out of range");
    write_raw("json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]", 0, 16);
    expect_fail("bad JSON", pathf("json.safetensors"), "JSON", NULL);
    write_raw("overlap.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[12,20]}}",
              0, 24);
    expect_fail("overlapping offsets", pathf("overlap.safetensors"), "overlap", "tensors a and b");
    write_raw("contain.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
              "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]}}",
              0, 32);
    expect_fail("tensor inside another", pathf("contain.safetensors"), "overlap", NULL);
    write_raw("range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[100,116]}}", 0, 24);
    expect_fail("offset out of range", pathf("range.safetensors"), "tensor a", "out of range");
    write_raw("mismatch.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 0, 24);
    expect_fail("dtype/shape mismatch", pathf("mismatch.safetensors"), "tensor a", "dtype/shape mismatch");
    write_raw("dtype.safetensors", "{\"w8\":{\"dtype\":\"F8_E4M3\",\"shape\":[16],\"data_offsets\":[0,16]}}", 0, 16);
    expect_fail("unknown dtype", pathf("dtype.safetensors"), "tensor w8", "unsupported dtype F8_E4M3");
    write_raw("neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 0, 16);
    expect_fail("negative dimension", pathf("neg.safetensors"), "tensor a", "shape[0]");
    write_raw("order.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 0, 16);
    expect_fail("end before begin", pathf("order.safetensors"), "tensor a", "data_offsets");
    write_raw("dupkey.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              0, 16);
    expect_fail("duplicate name in one file", pathf("dupkey.safetensors"), "tensor a appears twice", NULL);
    expect_fail("missing path", pathf("none.safetensors"), "none.safetensors", NULL);
    mkdir(pathf("empty"), 0755);
    expect_fail("empty directory", pathf("empty"), "holds neither", NULL);
    rmdir(pathf("empty"));
}

static void cleanup(void) {
    const char *files[] = {"rt.safetensors",
                           "m-00001-of-00002.safetensors",
                           "m-00002-of-00002.safetensors",
                           "m-dup.safetensors",
                           "model.safetensors.index.json",
                           "bad1.index.json",
                           "bad2.index.json",
                           "bad3.index.json",
                           "bad4.index.json",
                           "bad5.index.json",
                           "bad6.index.json",
                           "bad7.index.json",
                           "ok.safetensors",
                           "hlen.safetensors",
                           "hlen0.safetensors",
                           "tiny.safetensors",
                           "trunc.safetensors",
                           "json.safetensors",
                           "overlap.safetensors",
                           "contain.safetensors",
                           "range.safetensors",
                           "mismatch.safetensors",
                           "dtype.safetensors",
                           "neg.safetensors",
                           "order.safetensors",
                           "dupkey.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(pathf(files[i]));
    CHECK(rmdir(dir) == 0, "temp dir %s left empty", dir);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/g4_test_st_XXXXXX");
    if (!mkdtemp(dir)) return check_skip("mkdtemp failed");
    test_round_trip();
    test_sparse();
    test_sharded();
    test_corruptions();
    cleanup();
    return check_summary();
}
