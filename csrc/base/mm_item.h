/* mm_item.h — one image (or video frame) in a request's prompt: its run of placeholder positions,
 * whose input embeddings are the vision tower's soft tokens for it, and the tower's input. On the
 * ground floor because the media layer makes items (media/vision_input.h) and the engine takes
 * them (g4_request_params.mm: what submit checks and copies is said there), neither including
 * the other. */
#ifndef G4_BASE_MM_ITEM_H
#define G4_BASE_MM_ITEM_H

#include <stdint.h>

typedef struct g4_mm_item {
    int pos;                    /* first placeholder position in the prompt */
    int n_tokens;               /* placeholders = soft tokens = (ph / 3) × (pw / 3) */
    uint64_t hash[2];           /* content hash: the prefix-cache and encoder-cache key */
    const float *patches;       /* f32 [ph × pw, 768] the tower's input (copied at submit) */
    int ph, pw;
} g4_mm_item;

#endif
