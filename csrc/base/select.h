/* select.h — the k-th largest of an array of floats (quickselect, expected O(n)). The host
 * samplers' top-k threshold: the CPU backend's sample op (backend/cpu/cpu_sample.c) and the
 * engine's reference sampler (engine/sampling.c) share it.
 * Not here: sorting, ties broken by id (the samplers do that after the threshold). */
#ifndef G4_BASE_SELECT_H
#define G4_BASE_SELECT_H

/* k-th largest (1-based, 1 ≤ k ≤ n) of v[0..n); reorders v. */
float g4_kth_largest(float *v, int n, int k);

#endif
