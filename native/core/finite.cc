#include "core/finite.h"

#include <algorithm>
#include <cmath>

namespace shortgpt {

int64_t firstNonFinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

std::string nonFiniteName(float v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

std::string tensorPosition(const std::vector<int64_t>& shape, int64_t element) {
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t rest = element;
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t extent = std::max<int64_t>(shape[d], 1);
    idx[d] = rest % extent;
    rest /= extent;
  }
  std::string out = "[";
  for (size_t d = 0; d < idx.size(); ++d) out += (d ? ", " : "") + std::to_string(idx[d]);
  return out + "]";
}

void throwNonFiniteWeight(const TensorRef& ref, int64_t element, float value) {
  throw EngineError("ERR_NONFINITE_WEIGHT",
                    "tensor '" + ref.name + "' in " + ref.file + " holds a non-finite value (" + nonFiniteName(value) +
                        ") at element " + std::to_string(element) + " = position " + tensorPosition(ref.shape, element) +
                        " (the first one); the checkpoint is damaged, and scores computed through it would be meaningless");
}

void throwNonFiniteActivation(const std::string& what, TokenPlace place, int64_t index, float v) {
  throw EngineError("ERR_NONFINITE_ACTIVATION",
                    what + " became non-finite (" + nonFiniteName(v) + ") at sequence " + std::to_string(place.sequence) +
                        ", position " + std::to_string(place.position) + ", hidden index " + std::to_string(index) +
                        " (the first one): the weights overflow float32 arithmetic or hold NaN/Inf; scores "
                        "computed from it would be meaningless");
}

TokenPlace placeOfRow(const std::vector<int64_t>& seqOffsets, int64_t row) {
  // The last offset <= row: its sequence holds the row.
  auto it = std::upper_bound(seqOffsets.begin(), seqOffsets.end(), row);
  const int64_t s = static_cast<int64_t>(it - seqOffsets.begin()) - 1;
  TokenPlace p;
  p.sequence = std::max<int64_t>(s, 0);
  p.position = row - seqOffsets[static_cast<size_t>(p.sequence)];
  return p;
}

}  // namespace shortgpt
