// Lane-wise math shared by the vector kernels (attention_blocked.h, ops_avx2.cc), written with
// GCC/Clang vector extensions and compiled per instruction set by the including file; internal
// linkage, so the AVX2 and AVX-512 compilations never merge.
#pragma once
#include <cstdint>
#include <cstring>

namespace shortgpt {
namespace {

// exp(x) lane-wise for x already clamped to [-87, 88] (where 2^n stays a normal float): Cephes
// expf, range reduction by ln 2 (split in two constants) and a degree-5 polynomial, about 1 ulp.
// The scalar twin is expNonPositive in attention_kernel.h.
template <typename VF, typename VI>
inline VF expClampedV(VF x) {
  const VF t = x * 1.44269504088896341f;
  const VF n = (t + 12582912.0f) - 12582912.0f;  // round to nearest via 1.5 * 2^23
  VF r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  VF p = 1.9875691500e-4f - VF{};  // a plain broadcast (x - (+0) is x for every x)
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const VF y = p * r * r + r + 1.0f;
  const VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
  VF scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

}  // namespace
}  // namespace shortgpt
