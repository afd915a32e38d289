// Non-finite values (NaN, +-Inf) in weights and activations. A NaN or Inf reaching the Block
// Influence statistics does not fail by itself: it turns a layer's scores into invented
// numbers and a healthy layer gets cut. So weights are checked as they are converted and packed,
// activations as the statistics pass reads them, and either stops the run with an error naming
// the tensor or layer and the first bad position (ERR_NONFINITE_WEIGHT / _ACTIVATION / _LOGITS).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

// True when every x[0..n) is finite. Branch-free integer test of the exponent bits, so the
// compiler vectorises it: the cost is one pass over values that were just written (in cache).
inline bool allFinite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// The index of the first non-finite x[i], or -1.
int64_t firstNonFinite(const float* x, int64_t n);

// The index of the first NaN/Inf among n bf16 values (exponent bits all ones), or -1. A
// branch-free pass first (vectorised), the search only when there is one.
inline int64_t firstNonFiniteBf16(const uint16_t* v, int64_t n) {
  uint16_t any = 0;
  for (int64_t i = 0; i < n; ++i) any |= static_cast<uint16_t>((v[i] & 0x7f80u) == 0x7f80u);
  if (!any) return -1;
  for (int64_t i = 0; i < n; ++i) {
    if ((v[i] & 0x7f80u) == 0x7f80u) return i;
  }
  return -1;
}

// "NaN", "+Inf" or "-Inf".
std::string nonFiniteName(float v);

// A position in a tensor of this shape, as "[r, c]" (row-major), from its flat element index.
std::string tensorPosition(const std::vector<int64_t>& shape, int64_t element);

// Throws ERR_NONFINITE_WEIGHT: tensor `ref` holds `value` at flat element `element`.
[[noreturn]] void throwNonFiniteWeight(const TensorRef& ref, int64_t element, float value);

// Checks the f32 values `x` that hold elements [firstElement, firstElement + n) of `ref`.
inline void checkWeightFinite(const TensorRef& ref, const float* x, int64_t n, int64_t firstElement) {
  if (allFinite(x, n)) return;
  const int64_t i = firstNonFinite(x, n);
  throwNonFiniteWeight(ref, firstElement + i, x[i]);
}

// Where a row of the residual stream belongs: sequence (calibration window) and position in it.
struct TokenPlace {
  int64_t sequence = 0;
  int64_t position = 0;
};

// Throws ERR_NONFINITE_ACTIVATION for `what` (e.g. "the layer's output"): value `v` at `place`,
// hidden index `index`.
[[noreturn]] void throwNonFiniteActivation(const std::string& what, TokenPlace place, int64_t index, float v);

// seqOffsets: [sequences + 1] first row of each sequence. The place of residual row `row`.
TokenPlace placeOfRow(const std::vector<int64_t>& seqOffsets, int64_t row);

}  // namespace shortgpt
