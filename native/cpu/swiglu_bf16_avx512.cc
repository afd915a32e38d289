// The fused SwiGLU epilogue of fast mode's gate|up GEMM (gemm_bf16_driver.cc), for AVX-512 CPUs
// (every CPU that runs fast mode has AVX-512F/BW). A kernel's C tile holds, per row, a 16-wide
// span of gate beside the same span of up; one zmm is one span. The result silu(gate) * up is
// rounded to BF16 at once and written where the down projection's tile loop reads its
// activations, so the [tokens, intermediate] f32 product is never written, read back and
// converted (16 MB per Llama-3.2-1B layer at 512 tokens).
//
// Bit-identical to swiglu() (ops_avx2.cc: the same formula and exp, lane for lane, with FMA
// contraction as there) followed by convertRowsBf16 (the same round-to-nearest-even on the bits).
#if defined(SHORTGPT_X86)
#include <cstdint>
#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#endif
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm_bf16_kernels.h"
#include "cpu/vec16.h"

namespace shortgpt {

namespace {

// As expV in ops_avx2.cc: clamped to [-87, 88], then Cephes expf.
inline V16 expV(V16 x) {
  x = x < splat16(-87.0f) ? splat16(-87.0f) : x;
  x = x > splat16(88.0f) ? splat16(88.0f) : x;
  return expClampedV<V16, I16>(x);
}

}  // namespace

void swigluTileToBf16Avx512(const float* c, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo) {
  const __mmask16 keep = cols >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << cols) - 1u);
  for (int64_t i = 0; i < rows; ++i) {
    V16 g, u;
    std::memcpy(&g, c + i * kBf16Cols, sizeof g);
    std::memcpy(&u, c + i * kBf16Cols + 16, sizeof u);
    const V16 o = (g / (1.0f + expV(-g))) * u;
    __m512i bits;
    std::memcpy(&bits, &o, sizeof bits);
    _mm256_mask_storeu_epi16(out + i * ldo, keep, roundToBf16(bits));
  }
}

}  // namespace shortgpt
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif  // SHORTGPT_X86
