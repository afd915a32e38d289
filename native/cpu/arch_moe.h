// The sparse mixture-of-experts MLP of Mixtral and Qwen3-MoE (issue 14), CPU backend:
// transformers' MixtralTopKRouter / Qwen3MoeTopKRouter and MixtralExperts / Qwen3MoeExperts.
// Per token: router logits = x W_r^T, softmax over the experts in f32, the topK largest
// probabilities (the lower expert index first among equal ones), divided by their sum when
// normTopkProb; then per expert in ascending order, the tokens routed to it are gathered and run
// through its SwiGLU MLP as one GEMM each, and weight * output is added to those tokens' rows
// (transformers' index_add_ in the same expert order). One layer's experts are packed at a time
// (the layer-streaming memory bound: one layer plus activations). In the bf16 fast mode the
// experts' GEMMs run in bf16 like the layer's other projections; the router stays f32, so that
// the routing decisions are those of the exact model wherever they are not near a tie.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"

namespace shortgpt {

// Whether these layer weights are an MoE layer's (they carry the router).
inline bool isMoeLayer(const LayerRefs& w) { return w.count("moe_router") != 0; }

class MoeMlp {
 public:
  // Reads and packs the router and every expert of `w` (f32; NaN/Inf weights throw
  // ERR_NONFINITE_WEIGHT naming the tensor).
  void load(const ModelSpec& spec, const LayerRefs& w, bool bf16, ThreadPool& pool);
  // out[rows, hidden] = the MoE MLP of x[rows, hidden] (the normed MLP input).
  void forward(const float* x, int64_t rows, float* out, ThreadPool& pool);
  // Frees the packed experts.
  void release();

 private:
  int64_t experts_ = 0, topK_ = 0, hidden_ = 0, inter_ = 0;
  bool normTopk_ = false;
  bool bf16_ = false;
  PackedWeight router_;
  std::vector<PackedWeight> gateUp_, down_;  // per expert: [gate; up] [2I, H], down [H, I]
  std::vector<PackedWeightBf16> gateUpB_, downB_;  // the same in the bf16 fast mode
  std::vector<float> logits_, xe_, gu_, act_, ye_;
};

}  // namespace shortgpt
