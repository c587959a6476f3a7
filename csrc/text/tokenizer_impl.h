/* tokenizer_impl.h - private layout of g4_tokenizer, shared by tokenizer_load.c (building it)
 * and tokenizer.c / detokenizer.c (using it). Not a public header: nothing outside csrc/text
 * includes it. */
#ifndef G4_TEXT_TOKENIZER_IMPL_H
#define G4_TEXT_TOKENIZER_IMPL_H

#include <stdint.h>

#include "text/tokenizer.h"

/* One added token ("<|turn>", "<bos>", ...) with the HF AddedToken flags. */
typedef struct g4_added_token {
    int32_t id;
    uint32_t off, len;          /* content: arena[off .. off+len) */
    uint8_t special;            /* dropped by skip-special decoding; not split in plain mode */
    uint8_t normalized;         /* matched after normalization instead of on raw text */
    uint8_t lstrip, rstrip;     /* the match swallows whitespace on that side */
    uint8_t single_word;        /* only matched when not inside a word */
} g4_added_token;

/* Byte trie over added-token contents; children as first-child / next-sibling lists. */
typedef struct g4_trie_node {
    int32_t first_child, next_sibling;
    int32_t added;              /* index into added[] of the token ending here, or -1 */
    uint8_t byte;
} g4_trie_node;

typedef struct g4_trie {
    g4_trie_node *nodes;        /* node 0 is the root */
    int32_t n, cap;
} g4_trie;

/* Merge table entry: pair (left, right) -> (rank, merged id). Open addressing. */
typedef struct g4_merge_slot {
    uint64_t key;               /* (left << 32) | right; G4_MERGE_EMPTY when unused */
    int32_t rank, new_id;
} g4_merge_slot;
#define G4_MERGE_EMPTY UINT64_MAX

struct g4_tokenizer {
    int32_t n_vocab;            /* max id + 1 */
    char *arena;                /* all token strings, back to back */
    size_t arena_len;
    uint32_t *tok_off, *tok_len;/* [n_vocab] raw text of each id in arena */
    char *dec;                  /* decoded text of each id ("\u2581" -> " ") */
    uint32_t *dec_off, *dec_len;/* [n_vocab] */
    int16_t *byte_val;          /* [n_vocab] 0..255 for a "<0xXX>" token (decoder rule), else -1 */
    uint8_t *is_special;        /* [n_vocab] */
    int32_t *vocab_slots;       /* BPE vocab: string -> id, open addressing, -1 empty */
    uint32_t vocab_mask;
    g4_merge_slot *merges;      /* pair -> merge */
    uint64_t merge_mask;
    int32_t n_merges;
    g4_added_token *added;      /* [n_added] */
    int32_t n_added;
    g4_trie trie_raw, trie_norm;/* non-normalized / normalized added tokens */
    int32_t byte_id[256];       /* id of "<0xXX>" in the BPE vocab, -1 if absent */
    int32_t ascii_id[128];      /* id of each 1-byte character in the BPE vocab, -1 if absent */
    /* Chunking long pieces: chunk_pairs holds every adjacent character pair (a, b) (as
     * initial-symbol ids) found inside a token that some merge produces. A boundary between
     * initial symbols whose pair is absent can never be spanned by a merge, so the two sides
     * merge independently and BPE may run on them separately with identical results.
     * chunk_ok is 0 when a merge takes a byte token or <unk> as an operand (then symbols
     * that are not characters could merge and the argument above does not hold). */
    uint64_t *chunk_pairs;      /* open addressing set of (a << 32 | b); G4_MERGE_EMPTY = free */
    uint64_t chunk_mask;
    int chunk_ok;
    int32_t unk_id;             /* -1 when the model has no unk token */
    int byte_fallback, fuse_unk, ignore_merges;
    int normalize_space;        /* the Replace(" ", "\u2581") normalizer is present */
    int wants_bos;
    g4_special_ids sp;
};

/* FNV-1a; used by both the loader and the encoder so the tables agree. */
static inline uint32_t g4_tok_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static inline uint64_t g4_merge_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

#define G4_BPE_CHUNK 256 /* symbols per chunk before looking for a safe cut */

static inline int g4_tok_chunk_safe(const g4_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t i = g4_merge_hash(key) & tok->chunk_mask;
    for (;;) {
        if (tok->chunk_pairs[i] == key) return 0;
        if (tok->chunk_pairs[i] == G4_MERGE_EMPTY) return 1;
        i = (i + 1) & tok->chunk_mask;
    }
}

/* BPE vocab lookup (added tokens are not consulted): id or -1. */
int32_t g4_tok_vocab_find(const g4_tokenizer *tok, const char *s, size_t n);

/* Closes a byte-fallback run occupying out->data[run_start..out->len): kept when it is valid
 * UTF-8, else replaced by one U+FFFD per byte (the `tokenizers` ByteFallback rule). 0 / -1. */
int g4_tok_close_byte_run(g4_strbuf *out, size_t run_start);

/* Merge lookup: 1 and (*rank, *new_id) when (a, b) merges, else 0. */
static inline int g4_tok_merge_find(const g4_tokenizer *tok, int32_t a, int32_t b, int32_t *rank, int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t i = g4_merge_hash(key) & tok->merge_mask;
    for (;;) {
        const g4_merge_slot *s = &tok->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *new_id = s->new_id;
            return 1;
        }
        if (s->key == G4_MERGE_EMPTY) return 0;
        i = (i + 1) & tok->merge_mask;
    }
}

#endif
