/* test_encoder_cache.c — the encoder-output cache (engine/encoder_cache.h) against its rules:
 * lookups by (hash, token count); least recently used unpinned entries evicted first when the
 * byte bound would be passed; pinned entries never evicted (the bound may be exceeded until the
 * step ends), and unpin_all brings it back under the bound; a dropped entry is gone. */
#include <string.h>

#include "check.h"
#include "engine/encoder_cache.h"

#define H 8
#define ROW_BYTES (4 * H * sizeof(float)) /* every entry here: 4 tokens × H */

static g4_enc_entry *put(g4_enc_cache *c, uint64_t h) {
    uint64_t hash[2] = {h, h * 7};
    g4_enc_entry *e = g4_enc_cache_put(c, hash, 4, H);
    if (e)
        for (int i = 0; i < 4 * H; i++) e->rows[i] = (float)h;
    return e;
}

static int has(g4_enc_cache *c, uint64_t h) {
    uint64_t hash[2] = {h, h * 7};
    return g4_enc_cache_get(c, hash, 4) != NULL;
}

int main(void) {
    g4_enc_cache c;
    g4_enc_cache_init(&c, 3 * ROW_BYTES);
    REQUIRE(put(&c, 1) && put(&c, 2) && put(&c, 3), "put");
    g4_enc_cache_unpin_all(&c);
    CHECK(c.n == 3 && c.bytes == 3 * ROW_BYTES, "three entries fit: %d, %zu bytes", c.n, c.bytes);
    uint64_t h1[2] = {1, 7};
    g4_enc_entry *e1 = g4_enc_cache_get(&c, h1, 4);
    CHECK(e1 && e1->rows[0] == 1.0f, "hit returns the rows");
    CHECK(g4_enc_cache_get(&c, h1, 5) == NULL, "another token count is another entry");
    g4_enc_cache_unpin_all(&c);
    REQUIRE(put(&c, 4), "put 4"); /* 2 is now the least recently used */
    g4_enc_cache_unpin_all(&c);
    CHECK(!has(&c, 2) && has(&c, 1) && has(&c, 3) && has(&c, 4), "LRU entry 2 evicted, 1 (used) kept");
    /* everything pinned: a put goes above the bound, the end of the step evicts down to it */
    CHECK(has(&c, 1) && has(&c, 3) && has(&c, 4), "pin all three");
    REQUIRE(put(&c, 5), "put 5 while all are pinned");
    CHECK(c.n == 4 && c.bytes == 4 * ROW_BYTES, "pinned entries are not evicted: %d entries", c.n);
    g4_enc_cache_unpin_all(&c);
    CHECK(c.n == 3 && c.bytes <= 3 * ROW_BYTES, "unpin_all evicts down to the bound: %d entries", c.n);
    CHECK(has(&c, 5), "the newest entry survives");
    g4_enc_cache_unpin_all(&c);
    uint64_t h5[2] = {5, 35};
    g4_enc_cache_drop(&c, g4_enc_cache_get(&c, h5, 4));
    CHECK(!has(&c, 5) && c.n == 2 && c.bytes == 2 * ROW_BYTES, "drop removes the entry");
    g4_enc_cache_free(&c);
    return check_summary();
}
