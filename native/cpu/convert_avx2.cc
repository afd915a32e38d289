// dtype conversion with AVX2 (BF16: widen and shift) and F16C (F16: vcvtph2ps, exact for every
// finite, subnormal and infinite input; a signalling NaN comes out quietened, still a NaN).
#include <immintrin.h>

#include <cstring>

#include "core/dtype.h"
#include "cpu/kernels_avx2.h"

namespace shortgpt {

bool cpuHasF16c() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") != 0;
  }();
  return has;
}

__attribute__((target("avx2,f16c"))) void convertF16ToF32Avx2(const unsigned char* src, float* dst, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16ToF32(h);
  }
}

void convertBF16ToF32Avx2(const unsigned char* src, float* dst, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
  }
  for (; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16ToF32(h);
  }
}

}  // namespace shortgpt
