// A layer's weights read where they lie (issue 11): the layer's GEMM tensors mapped read-only from
// their files and handed to gemmStreamed (exact mode) or gemmBf16Streamed (fast mode), which pack
// each K slice as a tile needs it. When a layer's weights meet one batch of rows (a session of up
// to 1024 tokens), this replaces packing the whole layer before its first GEMM (a pass over
// every weight byte, a layer-sized copy in memory); results are bit-identical. With several
// batches per layer the CPU backend packs once instead (each GEMM call here stages again).
//
// A NaN or Inf weight is noticed by the GEMM that reads it, which then finds the first one in
// the part's tensors, in order, and throws ERR_NONFINITE_WEIGHT with the message packing gives
// (same tensor, element and value). Packing found it before the layer's first GEMM; here it is
// found at that part's GEMM, after the earlier parts of the layer ran (the session is then
// failed, as after any error).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/thread_pool.h"
#include "core/weights_io.h"
#include "cpu/gemm_bf16.h"
#include "cpu/layer_parts.h"

namespace shortgpt {

class StreamedLayer {
 public:
  // In the session's precision: exact (gemmStreamed, f32) or fast (bf16, gemmBf16Streamed).
  explicit StreamedLayer(bool bf16) : bf16_(bf16) {}
  // Maps layer `w`'s GEMM tensors, unmapping the previous layer's.
  void map(const ModelSpec& spec, const LayerRefs& w);
  void release();
  // Y (+)= X * W_part^T in the session's precision.
  void gemm(int part, const float* x, int64_t m, float* y, bool accumulate, ThreadPool& pool) const;
  // Fast mode: Y = base + X * W_part^T (gemmBf16StreamedAddTo).
  void gemmAddTo(int part, const float* x, int64_t m, const float* base, float* y, ThreadPool& pool) const;
  // Fast mode, X already in bf16 (the fused SwiGLU's output, for part 3).
  void gemm(int part, const Bf16Activations& x, int64_t m, float* y, bool accumulate, ThreadPool& pool) const;
  // act = bf16(silu(gate) * up) from part 2 (gate|up), SwiGLU fused into the GEMM's store (fast mode).
  void gemmSwiglu(const float* x, int64_t m, const Bf16Activations& act, ThreadPool& pool) const;

 private:
  // After a GEMM on part `part`: ERR_IO if a file shrank under its mapping, else
  // ERR_NONFINITE_WEIGHT when `finite` is false.
  void checkRead(int part, bool finite) const;
  [[noreturn]] void throwFirstNonFinite(int part) const;
  bool bf16_;
  std::vector<std::unique_ptr<MappedTensor>> maps_[kLayerParts];  // each knows its TensorRef
  WeightRows rows_[kLayerParts];
};

}  // namespace shortgpt
