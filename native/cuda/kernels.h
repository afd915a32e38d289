// Host-side launchers of the CUDA kernels (ops.cu, attention.cu). Each enqueues on `stream` and
// checks the launch; none synchronises. Buffers are device pointers, row-major; dtypes are the
// SG_DTYPE_* numbers of cuda_abi.h. The residual stream and every statistic input is f32;
// GEMM inputs are in the layer's GEMM dtype (f32 for TF32/exact, else bf16/f16).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace shortgpt::cuda {

// dst[i] = dstDt(srcDt(src[i])) for i < n; any pair of dtypes (equal ones copy).
void launchConvert(const void* src, int srcDt, void* dst, int dstDt, int64_t n, cudaStream_t stream);

// out[t, :] = f32(table[tokens[t], :]); table [vocab, hidden] in dtype dt.
void launchEmbedGather(const void* table, int dt, const int32_t* tokens, int64_t count, int hidden,
                       float* out, cudaStream_t stream);

// out[t, :] = outDt(x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * weight), x [rows, n] f32 with row
// stride ldx, weight [n] f32, out [rows, n] contiguous (Hugging Face LlamaRMSNorm in f32).
void launchRmsNorm(const float* x, int64_t ldx, const float* weight, float eps, int64_t rows, int n,
                   void* out, int outDt, cudaStream_t stream);

// In place on qkv [rows, qDim + 2 kvDim] f32 (q | k | v columns): adds the biases (may be null),
// applies Qwen3's per-head RMSNorm to q and k (qNorm/kNorm [headDim], may be null) and RoPE
// (rotate_half convention) to q and k with the tables ropeCos/ropeSin [positions, headDim / 2],
// computed on the host in double exactly as the CPU backend's RopeTable.
struct QkvPostArgs {
  float* qkv;
  int64_t rows;
  const int32_t* positions;  // [rows], position of each token inside its sequence
  const float* qkvBias;      // [qDim + 2 kvDim] or null
  const float* qNorm;        // [headDim] or null
  const float* kNorm;        // [headDim] or null
  void* qkv16;               // optional [rows, qDim + 2 kvDim] copy of the result in dtype dt16
  int dt16;
  const float* ropeCos;      // [maxPosition + 1, headDim / 2]
  const float* ropeSin;
  float eps;
  int numHeads, numKvHeads, headDim;
};
void launchQkvPost(const QkvPostArgs& a, cudaStream_t stream);

// Causal grouped-query attention for ONE sequence of `length` tokens whose rows start at
// qkv + 0 (the caller offsets the pointers): flash-style (key tiles in shared memory, online
// softmax), O(length) memory, optional sliding window. out [length, numHeads * headDim] in outDt.
struct AttentionArgs {
  const float* qkv;  // [length, qDim + 2 kvDim] f32 after QkvPost
  void* out;
  int outDt;
  int64_t length;
  int numHeads, numKvHeads, headDim;
  int slidingWindow;  // 0 = none
  float scale;        // 1 / sqrt(headDim)
};
void launchAttention(const AttentionArgs& a, cudaStream_t stream);

// The same attention on tensor cores (attention_tc.cu): q/k/v read from qkv16, the 16-bit copy
// (dtype a.outDt) that QkvPost writes when asked; a.qkv is unused. Only where
// tensorCoreAttentionSupports(headDim, outDt): 16-bit GEMM dtype, head_dim 16/32/64/96/128.
bool tensorCoreAttentionSupports(int headDim, int dt);
void launchAttentionTc(const void* qkv16, const AttentionArgs& a, cudaStream_t stream);

// out[t, j] = outDt(silu(gu[t, j]) * gu[t, inter + j]); gu [rows, 2 inter] f32 (gate | up).
void launchSwiGlu(const float* gu, int64_t rows, int inter, void* out, int outDt, cudaStream_t stream);

// y[t, j] += bias[j] for y [rows, n] with row stride ldy.
void launchAddBias(float* y, int64_t ldy, const float* bias, int64_t rows, int n, cudaStream_t stream);

// Per token (row) of in/out [rows, n] f32: writes perToken[t * 4 + {0,1,2,3}] = {cos (0.5 when
// undefined), arccos(cos)/pi, |out - in| / |out|, 1 if the cosine was undefined}; the dot
// product and the three norms are accumulated in double over a fixed lane order.
void launchTokenStats(const float* in, const float* out, int64_t rows, int n, double* perToken,
                      cudaStream_t stream);

// out[c] = sum over r < rows of values[r * cols + c], c < cols, in a fixed order that depends
// only on rows (one block; strided per-thread sums, then a fixed tree): bit-identical run to run.
void launchReduceColumns(const double* values, int64_t rows, int cols, double* out, cudaStream_t stream);

// One vocabulary chunk of the log-softmax: logits [rows, vocabChunk] f32, the chunk's first id
// vocabBase. Per row, updates the running max / scaled sum (double), picks the target's logit
// when the target id falls in the chunk, and adds the chunk's logits to rowSum.
struct LogitsChunkArgs {
  const float* logits;
  int64_t rows;
  int vocabChunk;
  int64_t vocabBase;
  const int32_t* targets;  // [rows], -1 = no next token
  double* runMax;          // [rows], start -inf
  double* runSum;          // [rows], start 0
  double* targetLogit;     // [rows]
  double* rowSum;          // [rows], start 0
};
void launchLogitsChunk(const LogitsChunkArgs& a, cudaStream_t stream);

// perToken[t * 3 + {0,1,2}] = {nll, 1 (has a target) or 0, rowSum}.
void launchNllFinalize(const double* runMax, const double* runSum, const double* targetLogit,
                       const double* rowSum, const int32_t* targets, int64_t rows, double* perToken,
                       cudaStream_t stream);

void launchFillDouble(double* p, int64_t n, double value, cudaStream_t stream);

}  // namespace shortgpt::cuda
