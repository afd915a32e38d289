// The AVX2/FMA GEMM micro-kernel (contract in gemm_kernels.h): up to 6 rows x 16 columns held in
// 12 ymm accumulators, 2 panel loads and up to 6 broadcasts per k step. The 6x16 shape uses 15
// of the 16 ymm registers and issues 12 FMAs per 8 loads, enough to keep both FMA pipes busy.
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace shortgpt {

namespace {

// Writes one row of the tile: 16 columns with two vector stores, or the first nr through a
// spill buffer at the right edge of C.
inline void storeRow(float* row, __m256 lo, __m256 hi, int nr, bool add) {
  if (nr == kGemmNR) {
    if (add) {
      lo = _mm256_add_ps(_mm256_loadu_ps(row), lo);
      hi = _mm256_add_ps(_mm256_loadu_ps(row + 8), hi);
    }
    _mm256_storeu_ps(row, lo);
    _mm256_storeu_ps(row + 8, hi);
    return;
  }
  alignas(32) float tile[kGemmNR];
  _mm256_store_ps(tile, lo);
  _mm256_store_ps(tile + 8, hi);
  for (int j = 0; j < nr; ++j) row[j] = add ? row[j] + tile[j] : tile[j];
}

// The accumulators are named variables, not arrays: GCC keeps arrays of __m256 in memory and
// would then store every accumulator on every k step.
template <int MR>
inline void microKernel(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int nr,
                        bool add) {
  __m256 c0l = _mm256_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l;
  __m256 c3l = c0l, c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  const float* a4 = a + 4 * lda;
  const float* a5 = a + 5 * lda;
#define SHORTGPT_ROW(i)                                \
  if constexpr (MR > i) {                              \
    const __m256 ai = _mm256_broadcast_ss(a##i + k);   \
    c##i##l = _mm256_fmadd_ps(ai, b0, c##i##l);        \
    c##i##h = _mm256_fmadd_ps(ai, b1, c##i##h);        \
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b + k * kGemmNR);
    const __m256 b1 = _mm256_load_ps(b + k * kGemmNR + 8);
    SHORTGPT_ROW(0)
    SHORTGPT_ROW(1)
    SHORTGPT_ROW(2)
    SHORTGPT_ROW(3)
    SHORTGPT_ROW(4)
    SHORTGPT_ROW(5)
  }
#undef SHORTGPT_ROW
  storeRow(c, c0l, c0h, nr, add);
  if constexpr (MR > 1) storeRow(c + ldc, c1l, c1h, nr, add);
  if constexpr (MR > 2) storeRow(c + 2 * ldc, c2l, c2h, nr, add);
  if constexpr (MR > 3) storeRow(c + 3 * ldc, c3l, c3h, nr, add);
  if constexpr (MR > 4) storeRow(c + 4 * ldc, c4l, c4h, nr, add);
  if constexpr (MR > 5) storeRow(c + 5 * ldc, c5l, c5h, nr, add);
}

}  // namespace

void gemmMicroKernelAvx2(int mr, int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                         int nr, bool add) {
  switch (mr) {
    case 6: microKernel<6>(kc, a, lda, b, c, ldc, nr, add); break;
    case 5: microKernel<5>(kc, a, lda, b, c, ldc, nr, add); break;
    case 4: microKernel<4>(kc, a, lda, b, c, ldc, nr, add); break;
    case 3: microKernel<3>(kc, a, lda, b, c, ldc, nr, add); break;
    case 2: microKernel<2>(kc, a, lda, b, c, ldc, nr, add); break;
    default: microKernel<1>(kc, a, lda, b, c, ldc, nr, add); break;
  }
}

// Packing: scratch holds 16 rows of kb floats (row stride ld); block receives kb rows of 16
// (block[kk * 16 + r] = scratch[r * ld + kk]), by 8 x 8 in-register transposes.
void transposeToPanelAvx2(const float* scratch, int64_t ld, int64_t kb, float* block) {
  int64_t kk = 0;
  for (; kk + 8 <= kb; kk += 8) {
    for (int r0 = 0; r0 < kGemmNR; r0 += 8) {
      const float* src = scratch + r0 * ld + kk;
      const __m256 r0v = _mm256_loadu_ps(src), r1v = _mm256_loadu_ps(src + ld);
      const __m256 r2v = _mm256_loadu_ps(src + 2 * ld), r3v = _mm256_loadu_ps(src + 3 * ld);
      const __m256 r4v = _mm256_loadu_ps(src + 4 * ld), r5v = _mm256_loadu_ps(src + 5 * ld);
      const __m256 r6v = _mm256_loadu_ps(src + 6 * ld), r7v = _mm256_loadu_ps(src + 7 * ld);
      const __m256 t0 = _mm256_unpacklo_ps(r0v, r1v), t1 = _mm256_unpackhi_ps(r0v, r1v);
      const __m256 t2 = _mm256_unpacklo_ps(r2v, r3v), t3 = _mm256_unpackhi_ps(r2v, r3v);
      const __m256 t4 = _mm256_unpacklo_ps(r4v, r5v), t5 = _mm256_unpackhi_ps(r4v, r5v);
      const __m256 t6 = _mm256_unpacklo_ps(r6v, r7v), t7 = _mm256_unpackhi_ps(r6v, r7v);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* dst = block + kk * kGemmNR + r0;
      _mm256_store_ps(dst + 0 * kGemmNR, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(dst + 1 * kGemmNR, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(dst + 2 * kGemmNR, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(dst + 3 * kGemmNR, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(dst + 4 * kGemmNR, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(dst + 5 * kGemmNR, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(dst + 6 * kGemmNR, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(dst + 7 * kGemmNR, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  }
  for (; kk < kb; ++kk) {
    for (int r = 0; r < kGemmNR; ++r) block[kk * kGemmNR + r] = scratch[r * ld + kk];
  }
}

}  // namespace shortgpt
