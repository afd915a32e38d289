// Element-wise ops compiled with -mavx2 -mfma (CMakeLists.txt), called from ops.cc only when
// the CPU has both (cpu_features.cc).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/ops.h"
#include "cpu/vec_math.h"

namespace shortgpt {

namespace {

typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

// A plain broadcast: x - (+0) is x for every x (so the compiler drops the subtraction), while
// "V8{} + x" would cost an add (0 + x is not x for x = -0) and an element-wise loop becomes
// masked inserts.
inline V8 splat(float x) { return x - V8{}; }

// exp(x) lane-wise (vec_math.h); x is clamped to [-87, 88]: exp(-87) ~ 1.6e-38 and
// exp(88) ~ 1.7e38, so silu's 1 + exp(-g) is still exact to f32 precision at the ends.
inline V8 expV(V8 x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  return expClampedV<V8, I8>(x);
}

}  // namespace

void swigluSpanAvx2(const float* g, const float* u, float* o, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    V8 gv, uv;
    std::memcpy(&gv, g + i, sizeof gv);
    std::memcpy(&uv, u + i, sizeof uv);
    const V8 ov = (gv / (1.0f + expV(-gv))) * uv;
    std::memcpy(o + i, &ov, sizeof ov);
  }
  for (; i < n; ++i) o[i] = (g[i] / (1.0f + std::exp(-g[i]))) * u[i];
}

}  // namespace shortgpt
