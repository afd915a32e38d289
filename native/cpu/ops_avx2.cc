// Element-wise ops compiled with -mavx2 -mfma (CMakeLists.txt), called from ops.cc only when
// the CPU has both (cpu_features.cc).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/ops.h"

namespace shortgpt {

namespace {

typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

// A plain broadcast: x - (+0) is x for every x (so the compiler drops the subtraction), while
// "V8{} + x" would cost an add (0 + x is not x for x = -0) and an element-wise loop becomes
// masked inserts.
inline V8 splat(float x) { return x - V8{}; }

// exp(x) lane-wise (Cephes expf: range reduction by ln 2, degree-5 polynomial, about 1 ulp);
// x is clamped to [-87, 88], where 2^n stays a normal float: exp(-87) ~ 1.6e-38 and
// exp(88) ~ 1.7e38, so silu's 1 + exp(-g) is still exact to f32 precision at the ends.
inline V8 expV(V8 x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  const V8 t = x * 1.44269504088896341f;
  const V8 n = (t + 12582912.0f) - 12582912.0f;  // round to nearest via 1.5 * 2^23
  V8 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V8 y = p * r * r + r + 1.0f;
  const I8 bits = (__builtin_convertvector(n, I8) + 127) << 23;
  V8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

}  // namespace

void swigluRowsAvx2(const float* gateUp, float* out, int64_t rowBegin, int64_t rowEnd, int64_t inter) {
  for (int64_t r = rowBegin; r < rowEnd; ++r) {
    const float* g = gateUp + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    int64_t i = 0;
    for (; i + 8 <= inter; i += 8) {
      V8 gv, uv;
      std::memcpy(&gv, g + i, sizeof gv);
      std::memcpy(&uv, u + i, sizeof uv);
      const V8 ov = (gv / (1.0f + expV(-gv))) * uv;
      std::memcpy(o + i, &ov, sizeof ov);
    }
    for (; i < inter; ++i) o[i] = (g[i] / (1.0f + std::exp(-g[i]))) * u[i];
  }
}

}  // namespace shortgpt
