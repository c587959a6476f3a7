/* test_gpu_ptx.cu — the PTX instructions of cuda/ptx.cuh against the PTX ISA's fragment
 * layout tables, transcribed below as data (PTX ISA, "Matrix Fragments for mma.m16n8k16 with
 * floating point type" and "Warp-level matrix load instruction: ldmatrix"), on the GPU and on
 * the emulated target alike:
 *   1. mma.sync m16n8k16 (f16 and bf16): every lane loads its A, B, C fragments from global
 *      memory by the table, one mma, every lane scatters D back by the table; D must equal a
 *      plain f64 matmul (products of 16-bit values are exact, sums of 16 terms within 1e-5);
 *   2. ldmatrix x1, x2, x4 and x4.trans: each lane's registers must hold the table's elements;
 *   3. the planted defect: the same mma with a wrong A fragment (rows g and g+8 swapped) must
 *      NOT match — the comparison can fail;
 *   4. cp.async 16 bytes with partial sizes (zero-fill), commit / wait, barrier, read back.
 * Exit 77 without a device. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "common.cuh"
#include "ptx.cuh"

/* --- the tables (element e of a lane's fragment: row/col = base + offset) ------------------ */
/* A 16×16 (.row): 4 registers × 2 halves = elements e 0..7; row = g + A_ROW[e], col = 2t + A_COL[e] */
static const int A_ROW[8] = {0, 0, 8, 8, 0, 0, 8, 8};
static const int A_COL[8] = {0, 1, 0, 1, 8, 9, 8, 9};
/* B 16×8 (.col): elements 0..3; row = 2t + B_ROW[e], col = g */
static const int B_ROW[4] = {0, 1, 8, 9};
/* C/D 16×8: elements 0..3; row = g + C_ROW[e], col = 2t + C_COL[e] */
static const int C_ROW[4] = {0, 0, 8, 8};
static const int C_COL[4] = {0, 1, 0, 1};
/* ldmatrix: matrix i's row r address from lane 8i + r; lane l's register i holds elements
 * (l/4, 2(l%4) + h) for h = 0, 1 (.trans: (2(l%4) + h, l/4)). */

struct tables {
    int a_row[8], a_col[8], b_row[4], c_row[4], c_col[4];
};

/* a [16×16], b [16×8] as 16-bit words, c, d [16×8] f32, one warp. swap_a: the planted defect. */
static __global__ void mma_kernel(float *d, const uint16_t *a, const uint16_t *b, const float *c, tables tb, int bf16,
                                  int swap_a) {
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    uint32_t ra[4], rb[2];
    float rc[4];
    for (int r = 0; r < 4; r++) {
        uint32_t w = 0;
        for (int h = 0; h < 2; h++) {
            int e = 2 * r + h, row = g + tb.a_row[e], col = 2 * t + tb.a_col[e];
            if (swap_a) row ^= 8;
            w |= (uint32_t)a[row * 16 + col] << (16 * h);
        }
        ra[r] = w;
    }
    for (int r = 0; r < 2; r++) {
        uint32_t w = 0;
        for (int h = 0; h < 2; h++) w |= (uint32_t)b[(2 * t + tb.b_row[2 * r + h]) * 8 + g] << (16 * h);
        rb[r] = w;
    }
    for (int e = 0; e < 4; e++) rc[e] = c[(g + tb.c_row[e]) * 8 + 2 * t + tb.c_col[e]];
    if (bf16) g4_mma_bf16(rc, ra, rb[0], rb[1]);
    else g4_mma_f16(rc, ra, rb[0], rb[1]);
    for (int e = 0; e < 4; e++) d[(g + tb.c_row[e]) * 8 + 2 * t + tb.c_col[e]] = rc[e];
}

/* m [4][8][8] 16-bit → shared; out[lane][variant][reg]: variants x1, x2, x4, x4.trans */
static __global__ void ldsm_kernel(uint32_t *out, const uint16_t *m) {
    G4_SHARED(uint4, sm4, [4 * 8 * 8 / 8]); /* uint4: 16-byte aligned rows */
    uint16_t *sm = (uint16_t *)sm4;
    int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32) sm[i] = m[i];
    __syncthreads();
    const uint16_t *row = sm + (lane >> 3) * 64 + (lane & 7) * 8; /* lane 8i + r → matrix i, row r */
    uint32_t r[4];
    g4_ldsm_x1(r, row);
    out[lane * 16 + 0] = r[0];
    g4_ldsm_x2(r, row);
    out[lane * 16 + 4] = r[0];
    out[lane * 16 + 5] = r[1];
    g4_ldsm_x4(r, row);
    for (int i = 0; i < 4; i++) out[lane * 16 + 8 + i] = r[i];
    g4_ldsm_x4_t(r, row);
    for (int i = 0; i < 4; i++) out[lane * 16 + 12 + i] = r[i];
}

/* 64 threads, each copies 16 bytes with src size (tid % 17) clamped to 16 → out */
static __global__ void cp_async_kernel(unsigned char *out, const unsigned char *in) {
    G4_SHARED(uint4, buf4, [64]);
    unsigned char *buf = (unsigned char *)buf4;
    int tid = threadIdx.x, n = tid % 17 > 16 ? 16 : tid % 17;
    g4_cp_async16(buf + tid * 16, in + tid * 16, n);
    g4_cp_async_commit();
    g4_cp_async_wait<0>();
    __syncthreads();
    int other = 63 - tid; /* read another warp's bytes: needs the wait and the barrier */
    for (int i = 0; i < 16; i++) out[other * 16 + i] = buf[other * 16 + i];
}

static uint16_t to16(float f, int bf16) {
    if (bf16) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
    return __half_as_ushort(__float2half_rn(f));
}
static float from16(uint16_t u, int bf16) {
    if (bf16) return __bfloat162float(__ushort_as_bfloat16(u));
    return __half2float(__ushort_as_half(u));
}

static uint64_t rng = 0x1234567ull;
static float urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f;
}

#define CK(call) REQUIRE((call) == cudaSuccess, "%s: %s", #call, cudaGetErrorString(cudaGetLastError()))

/* returns max |d − ref| / max |ref| */
static double run_mma(int bf16, int swap_a, int *launch_ok) {
    uint16_t a[256], b[128];
    float c[128], d[128];
    double ref[128];
    for (int i = 0; i < 256; i++) a[i] = to16(urand(), bf16);
    for (int i = 0; i < 128; i++) b[i] = to16(urand(), bf16);
    for (int i = 0; i < 128; i++) c[i] = urand();
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double s = c[i * 8 + j];
            for (int k = 0; k < 16; k++) s += (double)from16(a[i * 16 + k], bf16) * from16(b[k * 8 + j], bf16);
            ref[i * 8 + j] = s;
        }
    tables tb;
    memcpy(tb.a_row, A_ROW, sizeof A_ROW);
    memcpy(tb.a_col, A_COL, sizeof A_COL);
    memcpy(tb.b_row, B_ROW, sizeof B_ROW);
    memcpy(tb.c_row, C_ROW, sizeof C_ROW);
    memcpy(tb.c_col, C_COL, sizeof C_COL);
    uint16_t *da, *db;
    float *dc, *dd;
    *launch_ok =
        cudaMalloc((void **)&da, sizeof a) == cudaSuccess && cudaMalloc((void **)&db, sizeof b) == cudaSuccess &&
        cudaMalloc((void **)&dc, sizeof c) == cudaSuccess && cudaMalloc((void **)&dd, sizeof d) == cudaSuccess &&
        cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice) == cudaSuccess &&
        cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice) == cudaSuccess &&
        cudaMemcpy(dc, c, sizeof c, cudaMemcpyHostToDevice) == cudaSuccess;
    if (!*launch_ok) return 1e30;
    G4_LAUNCH(1, 32, 0, (cudaStream_t)0, mma_kernel)(dd, da, db, dc, tb, bf16, swap_a);
    *launch_ok = cudaGetLastError() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess &&
                 cudaMemcpy(d, dd, sizeof d, cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dd);
    double mr = 0, me = 0;
    for (int i = 0; i < 128; i++) {
        mr = fmax(mr, fabs(ref[i]));
        me = fmax(me, fabs(d[i] - ref[i]));
    }
    return me / mr;
}

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) return check_skip("no CUDA device");

    for (int bf16 = 0; bf16 < 2; bf16++) {
        int ok;
        double e = run_mma(bf16, 0, &ok);
        CHECK(ok, "mma %s: CUDA call failed", bf16 ? "bf16" : "f16");
        CHECK(e < 1e-5, "mma %s by the table: relative error %.3g", bf16 ? "bf16" : "f16", e);
        printf("mma.m16n8k16 %s: max relative error %.3g by the ISA table\n", bf16 ? "bf16" : "f16", e);
        double bad = run_mma(bf16, 1, &ok);
        CHECK(ok && bad > 1e-2, "planted defect (A rows g, g+8 swapped) not caught: error %.3g", bad);
        printf("mma.m16n8k16 %s with a wrong A fragment: relative error %.3g (rejected)\n", bf16 ? "bf16" : "f16", bad);
    }

    uint16_t m[256];
    for (int i = 0; i < 256; i++) m[i] = (uint16_t)(i * 7 + 3);
    uint16_t *dm;
    uint32_t *dout, out[32 * 16];
    CK(cudaMalloc((void **)&dm, sizeof m));
    CK(cudaMalloc((void **)&dout, sizeof out));
    CK(cudaMemcpy(dm, m, sizeof m, cudaMemcpyHostToDevice));
    G4_LAUNCH(1, 32, 0, (cudaStream_t)0, ldsm_kernel)(dout, dm);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
    int bad_ldsm = 0;
    for (int l = 0; l < 32; l++) {
        int a = l / 4, b = 2 * (l % 4);
        for (int v = 0; v < 4; v++) {
            int n_reg = v == 0 ? 1 : (v == 1 ? 2 : 4), trans = v == 3,
                slot = v == 0 ? 0 : (v == 1 ? 4 : (v == 2 ? 8 : 12));
            for (int i = 0; i < n_reg; i++) {
                uint32_t want = 0;
                for (int h = 0; h < 2; h++) {
                    int row = trans ? b + h : a, col = trans ? a : b + h;
                    want |= (uint32_t)m[i * 64 + row * 8 + col] << (16 * h);
                }
                if (out[l * 16 + slot + i] != want) bad_ldsm++;
            }
        }
    }
    CHECK(bad_ldsm == 0, "ldmatrix: %d registers differ from the ISA table", bad_ldsm);
    printf("ldmatrix x1/x2/x4/x4.trans: %d of %d registers differ from the ISA table\n", bad_ldsm, 32 * 11);
    cudaFree(dm);
    cudaFree(dout);

    unsigned char in[1024], got[1024];
    for (int i = 0; i < 1024; i++) in[i] = (unsigned char)(i * 13 + 1);
    unsigned char *din, *dgot;
    CK(cudaMalloc((void **)&din, sizeof in));
    CK(cudaMalloc((void **)&dgot, sizeof got));
    CK(cudaMemcpy(din, in, sizeof in, cudaMemcpyHostToDevice));
    G4_LAUNCH(1, 64, 0, (cudaStream_t)0, cp_async_kernel)(dgot, din);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got, dgot, sizeof got, cudaMemcpyDeviceToHost));
    int bad_cp = 0;
    for (int t = 0; t < 64; t++) {
        int nb = t % 17 > 16 ? 16 : t % 17;
        for (int i = 0; i < 16; i++) bad_cp += got[t * 16 + i] != (i < nb ? in[t * 16 + i] : 0);
    }
    CHECK(bad_cp == 0, "cp.async with src-size: %d bytes wrong", bad_cp);
    cudaFree(din);
    cudaFree(dgot);
    return check_summary();
}
