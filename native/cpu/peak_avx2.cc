// The AVX2 FMA peak loop (see peak.h): 12 independent accumulators cover the FMA latency (4
// cycles) times the number of FMA pipes (2) with room to spare.
#include <immintrin.h>

#include "cpu/kernels_avx2.h"

namespace shortgpt {

// Named accumulators: GCC keeps an array of vectors in memory, which would time the stores.
float fmaPeakLoopAvx2(int64_t iterations) {
  __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(1e-3f), c2 = _mm256_set1_ps(2e-3f);
  __m256 c3 = _mm256_set1_ps(3e-3f), c4 = _mm256_set1_ps(4e-3f), c5 = _mm256_set1_ps(5e-3f);
  __m256 c6 = _mm256_set1_ps(6e-3f), c7 = _mm256_set1_ps(7e-3f), c8 = _mm256_set1_ps(8e-3f);
  __m256 c9 = _mm256_set1_ps(9e-3f), c10 = _mm256_set1_ps(1e-2f), c11 = _mm256_set1_ps(1.1e-2f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
    c0 = _mm256_fmadd_ps(c0, a, b);
    c1 = _mm256_fmadd_ps(c1, a, b);
    c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b);
    c4 = _mm256_fmadd_ps(c4, a, b);
    c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b);
    c7 = _mm256_fmadd_ps(c7, a, b);
    c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
    c10 = _mm256_fmadd_ps(c10, a, b);
    c11 = _mm256_fmadd_ps(c11, a, b);
  }
  const __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                   _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)),
                                                 _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11))));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  return lanes[0] + lanes[7];
}

}  // namespace shortgpt
