// The gated MLP activation over [rows, 2 * inter] gate|up rows: out[r, i] = act(gate[r, i]) *
// up[r, i] (GeGLU with tanh-GELU; SwiGLU goes span by span through swigluSpanFn, ops.h), rows split over the pool.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace shortgpt {

template <typename Act>
void gatedRows(const float* gateUp, float* out, int64_t rows, int64_t inter, ThreadPool& pool, Act act) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* g = gateUp + r * 2 * inter;
      const float* u = g + inter;
      float* o = out + r * inter;
      for (int64_t i = 0; i < inter; ++i) o[i] = act(g[i]) * u[i];
    }
  });
}

}  // namespace shortgpt
