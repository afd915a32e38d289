// A decoder layer's four GEMM weights ("parts", in the order a layer runs them: 0 q|k|v, 1 o,
// 2 gate|up, 3 down), each as the checkpoint tensors stacked along rows and the K they share.
// Shared by the packed path (CpuBackend::packLayer) and fast mode's streamed path
// (streamed_layer.h), so both name the same tensors in the same order.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "cpu/arch_moe.h"

namespace shortgpt {

constexpr int kLayerParts = 4;

// The tensors of part `part`, stacked in this order; empty for an MoE layer's MLP parts (its
// experts are MoeMlp's).
inline std::vector<const TensorRef*> layerPartRefs(const ModelSpec& spec, const LayerRefs& w, int part) {
  switch (part) {
    case 0:
      if (spec.fusedQkv) return {&w.at("W_pack")};
      return {&w.at("q_proj"), &w.at("k_proj"), &w.at("v_proj")};
    case 1: return {&w.at("o_proj")};
    case 2:
      if (isMoeLayer(w)) return {};
      if (spec.fusedGateUp) return {&w.at("gate_up_proj")};  // Phi-3: already [gate; up]
      return {&w.at("gate_proj"), &w.at("up_proj")};
    default:
      if (isMoeLayer(w)) return {};
      return {&w.at("down_proj")};
  }
}

// The K (input width) of part `part`.
inline int64_t layerPartK(const ModelSpec& spec, int part) {
  return part == 1 ? spec.qDim() : part == 3 ? spec.intermediateSize : spec.hiddenSize;
}

}  // namespace shortgpt
