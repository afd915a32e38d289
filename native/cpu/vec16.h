// 16-lane f32 helpers for the AVX-512 kernels of fast mode (swiglu_bf16_avx512.cc,
// attention_amx.cc, gemm_bf16_avx512.cc): included after the including file's AVX-512 target
// pragma, with internal linkage (as vec_math.h), so no other compilation's copy is ever used.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/vec_math.h"

namespace shortgpt {
namespace {

typedef float V16 __attribute__((vector_size(64)));
typedef int32_t I16 __attribute__((vector_size(64)));

inline V16 splat16(float x) { return x - V16{}; }  // a plain broadcast (see ops_avx2.cc's splat)

// 16 f32 bit patterns rounded to bf16, to nearest even on the bits (no DAZ, unlike
// VCVTNEPS2BF16), NaN kept a quiet NaN: f32ToBf16 (gemm_bf16.h) lane-wise.
inline __m256i roundToBf16(__m512i u) {
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)))),
      16);
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

}  // namespace
}  // namespace shortgpt
