// A weight [N, K] read where it lies (checkpoint tensors mapped from their files, streamed_layer.h),
// as one or more row-major tensors [n_i, K] stacked along rows (q;k;v, gate;up), in any dtype the
// engine reads; and the row lookup the streamed GEMMs (gemm_streamed.cc, gemm_bf16_driver.cc)
// stage their panel slices from.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/finite.h"

namespace shortgpt {

struct WeightRows {
  struct Part {
    const void* data;  // rows of K values of `dtype`, row-major, at any alignment
    DType dtype;
    int64_t rows;
  };
  std::vector<Part> parts;
  int64_t k = 0;
  int64_t rows() const {
    int64_t n = 0;
    for (const Part& p : parts) n += p.rows;
    return n;
  }
};

// Where each stacked part starts, and a row's bytes.
class StackedRows {
 public:
  explicit StackedRows(const WeightRows& w) : w_(w) {
    int64_t n = 0;
    for (const WeightRows::Part& p : w.parts) {
      begins_.push_back(n);
      n += p.rows;
      allBf16_ = allBf16_ && p.dtype == DType::BF16;
      allF32_ = allF32_ && p.dtype == DType::F32;
    }
  }
  const WeightRows& weight() const { return w_; }
  bool allBf16() const { return allBf16_; }
  bool allF32() const { return allF32_; }
  // The part holding stacked row g.
  size_t part(int64_t g) const {
    size_t pi = 0;
    while (pi + 1 < begins_.size() && g >= begins_[pi + 1]) ++pi;
    return pi;
  }
  // Row g's bytes from element k0 on.
  const uint8_t* row(int64_t g, int64_t k0) const {
    const size_t pi = part(g);
    const WeightRows::Part& p = w_.parts[pi];
    return static_cast<const uint8_t*>(p.data) + static_cast<size_t>((g - begins_[pi]) * w_.k + k0) * dtypeSize(p.dtype);
  }
  DType dtype(int64_t g) const { return w_.parts[part(g)].dtype; }
  // Row g's K values [k0, k0 + count) in f32 into out (any dtype, any alignment). Returns false
  // when one is NaN or +-Inf.
  bool rowF32(int64_t g, int64_t k0, int64_t count, float* out) const {
    converterToF32(dtype(g))(row(g, k0), out, static_cast<size_t>(count));
    return allFinite(out, count);
  }

 private:
  const WeightRows& w_;
  std::vector<int64_t> begins_;
  bool allBf16_ = true, allF32_ = true;
};

}  // namespace shortgpt
