// Element-wise pieces that only some architectures need (issue 14), kept out of cpu_backend.cc:
// Granite's multipliers and logits scaling, SmolLM3's per-layer RoPE choice. Each is one f32
// operation per element, as transformers computes it in float32, so results do not depend on
// the thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/thread_pool.h"
#include "cpu/ops.h"

namespace shortgpt {

// x[i] *= s for i in [0, n).
void scaleInPlace(float* x, int64_t n, float s, ThreadPool& pool);

// o[i] = h[i] + o[i] * s (Granite: `residual + hidden_states * residual_multiplier`).
void scaledResidualAdd(const float* h, float* o, int64_t n, float s, ThreadPool& pool);

// x[i] /= d for i in [0, n) (Granite: `logits / logits_scaling`, a division as torch does it).
void divideInPlace(float* x, int64_t n, float d, ThreadPool& pool);

// Whether layer `layer` (the checkpoint's index) applies the rotary embedding: not when
// spec.noRopeLayers lists it (SmolLM3).
bool layerAppliesRope(const ModelSpec& spec, int64_t layer);

// Phi-3's RoPE: partial rotary (the first rotaryDim dimensions of each head rotate, in the
// rotate_half convention within them; the rest pass through) and LongRoPE (per sequence, the
// short or long factors; cos and sin times attentionFactor). Built only when the spec needs it
// (active), else the plain RopeTable/applyRope path runs unchanged.
struct ArchRope {
  bool active = false;
  int64_t rotaryDim = 0;
  int64_t longAbove = 0;  // sequences of more tokens than this use longTable; 0: none do
  RopeTable shortTable, longTable;
};
ArchRope buildArchRope(const ModelSpec& spec, int64_t maxPositions);

// Rotates `heads` head vectors at the start of each row of sequences seqBegin..seqEnd-1 (rows
// seqOffsets[s] - rowBegin .. in x), each with the table its length selects.
void applyArchRope(float* x, int64_t stride, const int64_t* seqOffsets, int64_t seqBegin, int64_t seqEnd, int64_t rowBegin,
                   int64_t heads, int64_t headDim, const int32_t* positions, const ArchRope& rope, ThreadPool& pool);

// Gemma: a norm weight as the engine uses it, 1 + w in f32 (Gemma2RMSNorm: `* (1.0 + weight)`).
void addOneToNormWeight(std::vector<float>& w);

// `v` rounded to dtype's precision (round to nearest even; F32: to float), as torch's
// `tensor(v).to(dtype)` (Gemma's embed_scale.to(weight.dtype)).
double roundToDtype(double v, DType dtype);

// GeGLU: out[r, i] = gelu_tanh(gate[r, i]) * up[r, i] for gateUp rows [gate | up], with torch's
// gelu(approximate='tanh'): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in f32.
void gegluTanh(const float* gateUp, float* out, int64_t rows, int64_t inter, ThreadPool& pool);

// x[i] = cap * tanh(x[i] / cap) (Gemma 2's final_logit_softcapping).
void softcapInPlace(float* x, int64_t n, float cap, ThreadPool& pool);

// Whether `layer` is listed in `layers` (spec.fullAttentionLayers, spec.noRopeLayers).
bool layerListed(const std::vector<int64_t>& layers, int64_t layer);

// Why --heal's MLP-output capture would not mean what the healing solve assumes (the layer's
// output = its input + attention part + down_proj's output, unscaled), or null when it does:
// Granite's residual_multiplier scales it, OLMo 2's and Gemma's post_feedforward_layernorm
// normalise it, an MoE layer routes it through several experts.
const char* healUnsupportedReason(const ModelSpec& spec);

}  // namespace shortgpt
