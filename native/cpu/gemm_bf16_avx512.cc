// The AVX512-BF16 micro-kernel of fast mode (VDPBF16PS) and the AVX-512 f32 -> bf16 row converter.
// Compiled for x86-64 with the target set here (as gemm_avx512.cc), and called only after the
// run-time check in gemm_bf16.cc. VDPBF16PS adds, per f32 lane, the products of one pair of bf16
// values (a[k] * b[k] + a[k+1] * b[k+1], each step rounded to f32): the panels hold W in exactly
// those pairs (gemm_bf16.h), and a broadcast 32-bit word of A supplies the matching pair.
#if defined(SHORTGPT_X86)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512bf16"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512bf16")
#endif
// GCC 12 warns about the deliberately undefined registers inside its own AVX-512 headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "cpu/gemm_bf16_kernels.h"
#include "cpu/vec16.h"

namespace shortgpt {

namespace {

inline __m512 dp(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(a), reinterpret_cast<__m512bh&>(b));
}

// 8 rows x 32 columns: 16 zmm accumulators, two panel loads and 8 broadcasts per k pair.
inline void strip8(int64_t kp, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1, float* c,
                   bool add) {
  __m512 c0l = _mm512_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l, c3l = c0l, c3h = c0l;
  __m512 c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l, c6l = c0l, c6h = c0l, c7l = c0l, c7h = c0l;
  if (add) {
    c0l = _mm512_loadu_ps(c + 0 * 32); c0h = _mm512_loadu_ps(c + 0 * 32 + 16);
    c1l = _mm512_loadu_ps(c + 1 * 32); c1h = _mm512_loadu_ps(c + 1 * 32 + 16);
    c2l = _mm512_loadu_ps(c + 2 * 32); c2h = _mm512_loadu_ps(c + 2 * 32 + 16);
    c3l = _mm512_loadu_ps(c + 3 * 32); c3h = _mm512_loadu_ps(c + 3 * 32 + 16);
    c4l = _mm512_loadu_ps(c + 4 * 32); c4h = _mm512_loadu_ps(c + 4 * 32 + 16);
    c5l = _mm512_loadu_ps(c + 5 * 32); c5h = _mm512_loadu_ps(c + 5 * 32 + 16);
    c6l = _mm512_loadu_ps(c + 6 * 32); c6h = _mm512_loadu_ps(c + 6 * 32 + 16);
    c7l = _mm512_loadu_ps(c + 7 * 32); c7h = _mm512_loadu_ps(c + 7 * 32 + 16);
  }
#define SHORTGPT_ROW(i)                                                                 \
  {                                                                                     \
    uint32_t word;                                                                      \
    std::memcpy(&word, a + (i) * lda + 2 * kk, sizeof word);                            \
    const __m512i ai = _mm512_set1_epi32(static_cast<int>(word));                       \
    c##i##l = dp(c##i##l, ai, p0);                                                      \
    c##i##h = dp(c##i##h, ai, p1);                                                      \
  }
  const int64_t pairs = kp / 2;
#pragma GCC unroll 2
  for (int64_t kk = 0; kk < pairs; ++kk) {
    const __m512i p0 = _mm512_load_si512(b0 + kk * 32);
    const __m512i p1 = _mm512_load_si512(b1 + kk * 32);
    SHORTGPT_ROW(0)
    SHORTGPT_ROW(1)
    SHORTGPT_ROW(2)
    SHORTGPT_ROW(3)
    SHORTGPT_ROW(4)
    SHORTGPT_ROW(5)
    SHORTGPT_ROW(6)
    SHORTGPT_ROW(7)
  }
#undef SHORTGPT_ROW
  _mm512_storeu_ps(c + 0 * 32, c0l); _mm512_storeu_ps(c + 0 * 32 + 16, c0h);
  _mm512_storeu_ps(c + 1 * 32, c1l); _mm512_storeu_ps(c + 1 * 32 + 16, c1h);
  _mm512_storeu_ps(c + 2 * 32, c2l); _mm512_storeu_ps(c + 2 * 32 + 16, c2h);
  _mm512_storeu_ps(c + 3 * 32, c3l); _mm512_storeu_ps(c + 3 * 32 + 16, c3h);
  _mm512_storeu_ps(c + 4 * 32, c4l); _mm512_storeu_ps(c + 4 * 32 + 16, c4h);
  _mm512_storeu_ps(c + 5 * 32, c5l); _mm512_storeu_ps(c + 5 * 32 + 16, c5h);
  _mm512_storeu_ps(c + 6 * 32, c6l); _mm512_storeu_ps(c + 6 * 32 + 16, c6h);
  _mm512_storeu_ps(c + 7 * 32, c7l); _mm512_storeu_ps(c + 7 * 32 + 16, c7h);
}

}  // namespace

void gemmBf16KernelAvx512(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1,
                          float* c, bool add) {
  for (int s = 0; s < kBf16Rows; s += 8) strip8(kc, a + s * lda, lda, b0, b1, c + s * kBf16Cols, add);
}

void convertRowsToBf16Avx512(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t kp, uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * ldx;
    uint16_t* dst = out + r * kp;
    for (int64_t j = 0; j < kp; j += 16) {
      const int64_t left = k - j;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff)
                                     : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1u);
      const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + j));  // zeros past k
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), roundToBf16(u));
    }
  }
}

bool stagePanelAvx512(const uint16_t* const rows[16], int64_t valid, int64_t kc, uint16_t* panel) {
  // Per 32 k values: one 64-byte load per row (zeros past `valid` and for absent rows), then a
  // 16 x 16 transpose of 32-bit words (pairs), so that pair row c holds pair c of rows 0..15.
  const __m512i expMask = _mm512_set1_epi16(0x7f80);
  __mmask32 bad = 0;
  for (int64_t j = 0; j < kc; j += 32) {
    const int64_t left = valid - j;
    const __mmask32 m = left >= 32 ? ~__mmask32{0} : left <= 0 ? __mmask32{0} : static_cast<__mmask32>((1u << left) - 1u);
    __m512i a[16];
    for (int r = 0; r < 16; ++r) {
      a[r] = rows[r] ? _mm512_maskz_loadu_epi16(m, rows[r] + j) : _mm512_setzero_si512();
      bad |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(a[r], expMask), expMask);
    }
    __m512i t[16], u[16];
    for (int r = 0; r < 16; r += 2) {
      t[r] = _mm512_unpacklo_epi32(a[r], a[r + 1]);
      t[r + 1] = _mm512_unpackhi_epi32(a[r], a[r + 1]);
    }
    for (int g = 0; g < 16; g += 4) {  // u[g + i], 128-bit lane L: pair 4L + i of rows g..g+3
      u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
      u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
      u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
      u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    uint16_t* out = panel + (j / 2) * 32;
    for (int i = 0; i < 4; ++i) {
      const __m512i v0 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x44), v1 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xee);
      const __m512i v2 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xee);
      _mm512_store_si512(out + (0 + i) * 32, _mm512_shuffle_i32x4(v0, v2, 0x88));
      _mm512_store_si512(out + (4 + i) * 32, _mm512_shuffle_i32x4(v0, v2, 0xdd));
      _mm512_store_si512(out + (8 + i) * 32, _mm512_shuffle_i32x4(v1, v3, 0x88));
      _mm512_store_si512(out + (12 + i) * 32, _mm512_shuffle_i32x4(v1, v3, 0xdd));
    }
  }
  return bad == 0;
}

}  // namespace shortgpt
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif  // SHORTGPT_X86
