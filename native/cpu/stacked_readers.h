// Readers over tensors stacked row-wise ([n_i, k] each) as one [n, k] weight: part i holds rows
// begins[i] .. begins[i] + shape[0] of the stack (the MoE router/experts, fused projections).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/weights_io.h"

namespace shortgpt {

struct StackedReaders {
  std::vector<std::unique_ptr<TensorReader>> readers;
  std::vector<int64_t> begins;
  int64_t n = 0;

  explicit StackedReaders(const std::vector<const TensorRef*>& parts) {
    for (const TensorRef* p : parts) {
      readers.push_back(std::make_unique<TensorReader>(*p));
      begins.push_back(n);
      n += p->shape[0];
    }
  }
};

}  // namespace shortgpt
