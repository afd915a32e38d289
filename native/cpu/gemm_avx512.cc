// The AVX-512 GEMM micro-kernel: the 6-row tile of gemm_avx2.cc over two packed panels at once
// (6 x 32 columns, 12 zmm accumulators, 2 panel loads and 6 broadcasts per k step). Each output
// element gets the same fused multiply-adds in the same k order as in the AVX2 kernel, and FMA is
// exactly rounded whatever the vector width, so this kernel's results are bit-identical to the
// AVX2 kernel's: it is only faster, on CPUs whose 512-bit units run at full rate (Zen 5, Xeons).
// Compiled for x86-64 only, with the target set here (not by CMake), and called only after the
// run-time check in gemm.cc.
#if defined(SHORTGPT_X86)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace shortgpt {

namespace {

inline void storeRow(float* row, __m512 acc, int nr, bool add) {
  if (nr == kGemmNR) {
    if (add) acc = _mm512_add_ps(_mm512_loadu_ps(row), acc);
    _mm512_storeu_ps(row, acc);
    return;
  }
  const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1u);
  if (add) acc = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row), acc);
  _mm512_mask_storeu_ps(row, mask, acc);
}

// Named accumulators, as in gemm_avx2.cc: GCC keeps arrays of vectors in memory.
template <int MR>
inline void pairKernel(int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1, float* c,
                       int64_t ldc, int nr1, bool add) {
  __m512 c0l = _mm512_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l;
  __m512 c3l = c0l, c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  const float* a4 = a + 4 * lda;
  const float* a5 = a + 5 * lda;
#define SHORTGPT_ROW(i)                               \
  if constexpr (MR > i) {                             \
    const __m512 ai = _mm512_set1_ps(a##i[k]);        \
    c##i##l = _mm512_fmadd_ps(ai, p0, c##i##l);       \
    c##i##h = _mm512_fmadd_ps(ai, p1, c##i##h);       \
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 p0 = _mm512_load_ps(b0 + k * kGemmNR);
    const __m512 p1 = _mm512_load_ps(b1 + k * kGemmNR);
    SHORTGPT_ROW(0)
    SHORTGPT_ROW(1)
    SHORTGPT_ROW(2)
    SHORTGPT_ROW(3)
    SHORTGPT_ROW(4)
    SHORTGPT_ROW(5)
  }
#undef SHORTGPT_ROW
  storeRow(c, c0l, kGemmNR, add);
  storeRow(c + kGemmNR, c0h, nr1, add);
  if constexpr (MR > 1) { storeRow(c + ldc, c1l, kGemmNR, add); storeRow(c + ldc + kGemmNR, c1h, nr1, add); }
  if constexpr (MR > 2) { storeRow(c + 2 * ldc, c2l, kGemmNR, add); storeRow(c + 2 * ldc + kGemmNR, c2h, nr1, add); }
  if constexpr (MR > 3) { storeRow(c + 3 * ldc, c3l, kGemmNR, add); storeRow(c + 3 * ldc + kGemmNR, c3h, nr1, add); }
  if constexpr (MR > 4) { storeRow(c + 4 * ldc, c4l, kGemmNR, add); storeRow(c + 4 * ldc + kGemmNR, c4h, nr1, add); }
  if constexpr (MR > 5) { storeRow(c + 5 * ldc, c5l, kGemmNR, add); storeRow(c + 5 * ldc + kGemmNR, c5h, nr1, add); }
}

}  // namespace

void gemmPairKernelAvx512(int mr, int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1,
                          float* c, int64_t ldc, int nr1, bool add) {
  switch (mr) {
    case 6: pairKernel<6>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
    case 5: pairKernel<5>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
    case 4: pairKernel<4>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
    case 3: pairKernel<3>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
    case 2: pairKernel<2>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
    default: pairKernel<1>(kc, a, lda, b0, b1, c, ldc, nr1, add); break;
  }
}

}  // namespace shortgpt
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif  // SHORTGPT_X86
