/* rope.h — the rotary position embedding of one layer type (a ground-floor type: the model's
 * config parses it, the op table's attention geometry carries it to the kernels).
 *
 * Pairs are rotate-half: (i, i + head_dim/2). inv_freq[i] = theta^(-2i/head_dim) for
 * i < rotated_pairs, 0 (no rotation) beyond. Not here: applying it (backend ops). */
#ifndef G4_BASE_ROPE_H
#define G4_BASE_ROPE_H

typedef struct g4_rope {
    double theta;          /* base frequency: 1e4 sliding, 1e6 global */
    int rotated_pairs;     /* head_dim/2 for "default"; int(partial_rotary_factor*head_dim/2) for "proportional" */
} g4_rope;

#endif
