// The CPU GEMM used for every linear layer: Y[M x N] (+)= X[M x K] * W^T, where X is the
// activations (row-major f32, M tokens) and W a weight in Hugging Face's [out_features N,
// in_features K] layout, stored in the checkpoint as F32, F16 or BF16. W is converted to f32
// once per layer while it is packed into panels for the micro-kernel, so no whole-model f32
// copy exists. Results are bit-identical for any thread count (each output element is computed
// by exactly one thread, with a K loop order that does not depend on the partition).
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace shortgpt {

class PackedWeight {
 public:
  PackedWeight() = default;
  int64_t rows() const { return n_; }  // N, out_features
  int64_t cols() const { return k_; }  // K, in_features
  bool empty() const { return n_ == 0; }
  size_t bytes() const { return data_.size() * sizeof(float); }

  // Packs `src` ([N, K] row-major, dtype `dtype`). Rows [rowBegin, rowBegin + N) of a larger
  // matrix can be packed by offsetting `src` (used to split fused projections such as W_pack).
  static PackedWeight pack(const void* src, DType dtype, int64_t n, int64_t k, ThreadPool& pool);

 private:
  friend void gemm(const float*, int64_t, const PackedWeight&, float*, bool, ThreadPool&);
  int64_t n_ = 0, k_ = 0;
  std::vector<float> data_;  // layout private to gemm.cc
};

// Y[M, N] = X[M, K] * W^T (accumulate=false) or Y += X * W^T (accumulate=true).
// X row stride is K, Y row stride is N.
void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, bool accumulate, ThreadPool& pool);

}  // namespace shortgpt
