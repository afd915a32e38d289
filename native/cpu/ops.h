// Element-wise and per-row operations of a Llama-family decoder layer, in f32 with Hugging Face
// semantics (transformers' modeling_llama / modeling_qwen3). Every function parallelises over
// rows and computes each row on one thread in a fixed order, so results do not depend on the
// thread count. Buffers are row-major; `stride` is the distance in floats between rows.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/thread_pool.h"

namespace shortgpt {

// LlamaRMSNorm: y = (x * rsqrt(mean(x^2) + eps)) * w, per row of `dim` elements.
// x and y may be the same buffer.
void rmsNorm(const float* x, int64_t xStride, float* y, int64_t yStride, int64_t rows, int64_t dim,
             const float* w, float eps, ThreadPool& pool);

// Per-head RMSNorm (Qwen3 q_norm / k_norm over head_dim), in place on `heads` consecutive
// head vectors at the start of each row.
void headRmsNorm(float* x, int64_t stride, int64_t rows, int64_t heads, int64_t headDim,
                 const float* w, float eps, ThreadPool& pool);

// y[r, :] += b for every row.
void addBias(float* y, int64_t stride, int64_t rows, const float* b, int64_t n, ThreadPool& pool);

// cos/sin of position * inv_freq for positions [0, maxPositions), [position, headDim/2] each,
// with rope_scaling applied to inv_freq (linear: / factor; llama3: transformers'
// _compute_llama3_parameters).
struct RopeTable {
  int64_t half = 0;
  int64_t positions = 0;
  std::vector<float> cos, sin;
  static RopeTable build(const ModelSpec& spec, int64_t maxPositions);
};

// Rotary embedding in the rotate_half convention, in place on `heads` head vectors at the start
// of each row; row r is at sequence position positions[r].
void applyRope(float* x, int64_t stride, int64_t rows, int64_t heads, int64_t headDim,
               const int32_t* positions, const RopeTable& table, ThreadPool& pool);

// SwiGLU: out[r, i] = silu(gateUp[r, i]) * gateUp[r, inter + i]; gateUp rows are [gate | up],
// each row one swigluSpanFn() span. On CPUs with AVX2/FMA that is swigluSpanAvx2 (ops_avx2.cc),
// 8 lanes with a polynomial exp (about 1 ulp from expf), so its last bits differ from the
// portable path's std::exp.
void swiglu(const float* gateUp, float* out, int64_t rows, int64_t inter, ThreadPool& pool);

// o[i] = silu(g[i]) * u[i] for i < n, computed as swiglu computes element i of a row when
// element 0 of the span is a multiple of 8 of the row (8-lane groups, then a scalar tail): fast
// mode's gate|up GEMM applies it to each 16-column tile as it stores (gemm_bf16.h). The kernel
// for this CPU, chosen once per call of the caller (the choice reads the environment).
using SwigluSpanFn = void (*)(const float* g, const float* u, float* o, int64_t n);
SwigluSpanFn swigluSpanFn();

#if defined(SHORTGPT_X86)
// swigluSpanFn's AVX2/FMA build (call only when useAvx2Kernels()).
void swigluSpanAvx2(const float* g, const float* u, float* o, int64_t n);
#endif

}  // namespace shortgpt
