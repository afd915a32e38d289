// The memory-bound kernels of a decoder layer and of the statistics (launchers in kernels.h).
// Reductions that feed the statistics are in double and in a fixed order (butterfly shuffles
// over a fixed lane assignment, fixed shared-memory trees): no float atomics anywhere, so a
// result depends only on the input, never on the schedule.
#include <cmath>

#include "cuda/dtype_device.cuh"
#include "cuda/errors.h"
#include "cuda/kernels.h"

namespace shortgpt::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocksFor(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 16 ? (b < 1 ? 1 : b) : 65535 * 16);
}

__global__ void convertKernel(const void* src, int srcDt, void* dst, int dstDt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    storeAs(dst, dstDt, i, loadAs(src, srcDt, i));
}

__global__ void embedKernel(const void* table, int dt, const int32_t* tokens, int hidden, float* out) {
  const int64_t t = blockIdx.x;
  const int64_t row = tokens[t];
  for (int j = threadIdx.x; j < hidden; j += blockDim.x) out[t * hidden + j] = loadAs(table, dt, row * hidden + j);
}

// One block per row. The mean of squares is accumulated in double, like the CPU backend
// (native/cpu/ops.cc rmsScale); then (x * scale) * weight in f32, Hugging Face's order.
__global__ void rmsNormKernel(const float* x, int64_t ldx, const float* w, float eps, int n, void* out, int outDt) {
  const int64_t r = blockIdx.x;
  const float* row = x + r * ldx;
  double ss = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) ss += static_cast<double>(row[j]) * row[j];
  __shared__ double part[32];
  ss = warpSumD(ss);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    double v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0;
    v = warpSumD(v);
    if (threadIdx.x == 0) part[0] = v;
  }
  __syncthreads();
  const float inv = static_cast<float>(1.0 / sqrt(part[0] / static_cast<double>(n) + eps));
  for (int j = threadIdx.x; j < n; j += blockDim.x) storeAs(out, outDt, r * int64_t(n) + j, (row[j] * inv) * w[j]);
}

// One block per token, one warp per head; a head is staged in shared memory so that rotate_half
// can pair element d with d + headDim/2 whatever headDim is.
constexpr int kQkvWarps = 4;
constexpr int kMaxHeadDim = 512;

__global__ void qkvPostKernel(QkvPostArgs a) {
  __shared__ float buf[kQkvWarps][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x;
  const int hd = a.headDim, half = hd / 2;
  const int qkvDim = (a.numHeads + 2 * a.numKvHeads) * hd;
  float* row = a.qkv + t * qkvDim;
  const float* cosRow = a.ropeCos + int64_t(a.positions[t]) * (a.headDim / 2);
  const float* sinRow = a.ropeSin + int64_t(a.positions[t]) * (a.headDim / 2);
  const int heads = a.numHeads + 2 * a.numKvHeads;
  for (int h = warp; h < heads; h += kQkvWarps) {
    float* v = row + h * hd;
    const bool isQ = h < a.numHeads, isK = !isQ && h < a.numHeads + a.numKvHeads;
    double ss = 0;
    for (int d = lane; d < hd; d += 32) {
      float x = v[d];
      if (a.qkvBias) x += a.qkvBias[h * hd + d];
      buf[warp][d] = x;
      ss += static_cast<double>(x) * x;
    }
    __syncwarp();
    if (isQ || isK) {
      const float* nw = isQ ? a.qNorm : a.kNorm;
      float inv = 1.f;
      if (nw) inv = static_cast<float>(1.0 / sqrt(warpSumD(ss) / static_cast<double>(hd) + a.eps));
      for (int d = lane; d < hd; d += 32) {
        float x = buf[warp][d];
        if (nw) x = (x * inv) * nw[d];
        buf[warp][d] = x;
      }
      __syncwarp();
      // rotate_half: out[d] = x[d] cos - x[d + half] sin ; out[d + half] = x[d + half] cos + x[d] sin
      for (int d = lane; d < half; d += 32) {
        const float c = cosRow[d], s = sinRow[d];
        const float x1 = buf[warp][d], x2 = buf[warp][d + half];
        v[d] = x1 * c - x2 * s;
        v[d + half] = x2 * c + x1 * s;
        if (a.qkv16) {
          storeAs(a.qkv16, a.dt16, t * qkvDim + h * hd + d, x1 * c - x2 * s);
          storeAs(a.qkv16, a.dt16, t * qkvDim + h * hd + d + half, x2 * c + x1 * s);
        }
      }
    } else {
      for (int d = lane; d < hd; d += 32) {
        v[d] = buf[warp][d];
        if (a.qkv16) storeAs(a.qkv16, a.dt16, t * qkvDim + h * hd + d, buf[warp][d]);
      }
    }
    __syncwarp();
  }
}

__global__ void swiGluKernel(const float* gu, int64_t rows, int inter, void* out, int outDt) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, j = i - r * inter;
    const float g = gu[r * 2 * inter + j], u = gu[r * 2 * inter + inter + j];
    storeAs(out, outDt, i, (g / (1.f + expf(-g))) * u);  // silu(g) * u, as nn.SiLU
  }
}

__global__ void addBiasKernel(float* y, int64_t ldy, const float* bias, int64_t rows, int n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, j = i - r * n;
    y[r * ldy + j] += bias[j];
  }
}

// One warp per token: lane l sums elements l, l+32, ... in double, then a butterfly; the order
// is fixed by n alone.
__global__ void tokenStatsKernel(const float* in, const float* out, int64_t rows, int n, double* perToken) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (t >= rows) return;
  const float* a = in + t * n;
  const float* b = out + t * n;
  double dot = 0, na = 0, nb = 0, nd = 0;
  for (int j = lane; j < n; j += 32) {
    const double x = a[j], y = b[j], d = y - x;
    dot += x * y;
    na += x * x;
    nb += y * y;
    nd += d * d;
  }
  dot = warpSumD(dot);
  na = warpSumD(na);
  nb = warpSumD(nb);
  nd = warpSumD(nd);
  if (lane == 0) {
    // Same conventions as the CPU backend (native/cpu/stats.cc): an undefined cosine counts as
    // 0.5 (the authors' NaN replacement), the cosine is clamped to [-1, 1] before arccos, and
    // an all-zero output gives a relative magnitude of 0 (no change) or 1 (any change).
    // A NaN/Inf input or output (a finite f32 squared and summed in double cannot overflow)
    // makes this token's values NaN, so the layer's sums are NaN and the host refuses them
    // (cuda_binding.cc) instead of averaging an invented 0.5; only a zero-norm state is undefined.
    const double denom = sqrt(na) * sqrt(nb);
    const bool nonFinite = !(isfinite(na) && isfinite(nb));
    const bool undefined = !nonFinite && !(denom > 0);
    double c = nonFinite ? nan("") : undefined ? 0.5 : dot / denom;
    if (!nonFinite) c = c > 1 ? 1 : (c < -1 ? -1 : c);
    const double rel = nonFinite ? nan("") : nb > 0 ? sqrt(nd) / sqrt(nb) : (nd > 0 ? 1.0 : 0.0);
    perToken[t * 4 + 0] = c;
    perToken[t * 4 + 1] = acos(c) / M_PI;
    perToken[t * 4 + 2] = rel;
    perToken[t * 4 + 3] = undefined ? 1.0 : 0.0;
  }
}

constexpr int kReduceThreads = 1024;

__global__ void reduceColumnsKernel(const double* values, int64_t rows, int cols, double* out) {
  __shared__ double part[kReduceThreads];
  for (int c = 0; c < cols; ++c) {
    double s = 0;
    for (int64_t r = threadIdx.x; r < rows; r += kReduceThreads) s += values[r * cols + c];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = kReduceThreads / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[c] = part[0];
    __syncthreads();
  }
}

// One block per row: max and sum of exp over the chunk, merged into the running pair.
__global__ void logitsChunkKernel(LogitsChunkArgs a) {
  const int64_t r = blockIdx.x;
  const float* row = a.logits + r * int64_t(a.vocabChunk);
  __shared__ double red[256];
  double m = -INFINITY, sum = 0;
  for (int j = threadIdx.x; j < a.vocabChunk; j += blockDim.x) {
    m = fmax(m, static_cast<double>(row[j]));
    sum += row[j];
  }
  red[threadIdx.x] = m;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] = fmax(red[threadIdx.x], red[threadIdx.x + w]);
    __syncthreads();
  }
  const double chunkMax = red[0];
  __syncthreads();
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  const double chunkSum = red[0];
  __syncthreads();
  const double newMax = fmax(a.runMax[r], chunkMax);
  double e = 0;
  for (int j = threadIdx.x; j < a.vocabChunk; j += blockDim.x) e += exp(static_cast<double>(row[j]) - newMax);
  red[threadIdx.x] = e;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double old = a.runMax[r];
    a.runSum[r] = (old == -INFINITY ? 0.0 : a.runSum[r] * exp(old - newMax)) + red[0];
    a.runMax[r] = newMax;
    a.rowSum[r] += chunkSum;
    const int64_t target = a.targets[r];
    if (target >= a.vocabBase && target < a.vocabBase + a.vocabChunk) a.targetLogit[r] = row[target - a.vocabBase];
  }
}

__global__ void nllFinalizeKernel(const double* runMax, const double* runSum, const double* targetLogit,
                                  const double* rowSum, const int32_t* targets, int64_t rows, double* perToken) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x) {
    const bool has = targets[r] >= 0;
    perToken[r * 3 + 0] = has ? (runMax[r] + log(runSum[r])) - targetLogit[r] : 0.0;
    perToken[r * 3 + 1] = has ? 1.0 : 0.0;
    perToken[r * 3 + 2] = rowSum[r];
  }
}

__global__ void fillDoubleKernel(double* p, int64_t n, double v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = v;
}

}  // namespace

void launchConvert(const void* src, int srcDt, void* dst, int dstDt, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  convertKernel<<<blocksFor(n), kThreads, 0, stream>>>(src, srcDt, dst, dstDt, n);
  SG_CUDA_LAUNCH_CHECK("convert");
}

void launchEmbedGather(const void* table, int dt, const int32_t* tokens, int64_t count, int hidden, float* out,
                       cudaStream_t stream) {
  if (count <= 0) return;
  embedKernel<<<static_cast<unsigned>(count), 256, 0, stream>>>(table, dt, tokens, hidden, out);
  SG_CUDA_LAUNCH_CHECK("embedGather");
}

void launchRmsNorm(const float* x, int64_t ldx, const float* weight, float eps, int64_t rows, int n, void* out,
                   int outDt, cudaStream_t stream) {
  if (rows <= 0) return;
  rmsNormKernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(x, ldx, weight, eps, n, out, outDt);
  SG_CUDA_LAUNCH_CHECK("rmsNorm");
}

void launchQkvPost(const QkvPostArgs& a, cudaStream_t stream) {
  if (a.rows <= 0) return;
  if (a.headDim > kMaxHeadDim || a.headDim % 2 != 0)
    throw CudaFailure("ERR_SHAPE", "head_dim " + std::to_string(a.headDim) + " is not supported by the CUDA backend (even, at most 512)");
  qkvPostKernel<<<static_cast<unsigned>(a.rows), kQkvWarps * 32, 0, stream>>>(a);
  SG_CUDA_LAUNCH_CHECK("qkvPost");
}

void launchSwiGlu(const float* gu, int64_t rows, int inter, void* out, int outDt, cudaStream_t stream) {
  if (rows <= 0) return;
  swiGluKernel<<<blocksFor(rows * inter), kThreads, 0, stream>>>(gu, rows, inter, out, outDt);
  SG_CUDA_LAUNCH_CHECK("swiGlu");
}

void launchAddBias(float* y, int64_t ldy, const float* bias, int64_t rows, int n, cudaStream_t stream) {
  if (rows <= 0) return;
  addBiasKernel<<<blocksFor(rows * n), kThreads, 0, stream>>>(y, ldy, bias, rows, n);
  SG_CUDA_LAUNCH_CHECK("addBias");
}

void launchTokenStats(const float* in, const float* out, int64_t rows, int n, double* perToken, cudaStream_t stream) {
  if (rows <= 0) return;
  const int warps = 8;
  tokenStatsKernel<<<static_cast<unsigned>((rows + warps - 1) / warps), warps * 32, 0, stream>>>(in, out, rows, n, perToken);
  SG_CUDA_LAUNCH_CHECK("tokenStats");
}

void launchReduceColumns(const double* values, int64_t rows, int cols, double* out, cudaStream_t stream) {
  reduceColumnsKernel<<<1, kReduceThreads, 0, stream>>>(values, rows, cols, out);
  SG_CUDA_LAUNCH_CHECK("reduceColumns");
}

void launchLogitsChunk(const LogitsChunkArgs& a, cudaStream_t stream) {
  if (a.rows <= 0) return;
  logitsChunkKernel<<<static_cast<unsigned>(a.rows), 256, 0, stream>>>(a);
  SG_CUDA_LAUNCH_CHECK("logitsChunk");
}

void launchNllFinalize(const double* runMax, const double* runSum, const double* targetLogit, const double* rowSum,
                       const int32_t* targets, int64_t rows, double* perToken, cudaStream_t stream) {
  if (rows <= 0) return;
  nllFinalizeKernel<<<blocksFor(rows), kThreads, 0, stream>>>(runMax, runSum, targetLogit, rowSum, targets, rows, perToken);
  SG_CUDA_LAUNCH_CHECK("nllFinalize");
}

void launchFillDouble(double* p, int64_t n, double value, cudaStream_t stream) {
  if (n <= 0) return;
  fillDoubleKernel<<<blocksFor(n), kThreads, 0, stream>>>(p, n, value);
  SG_CUDA_LAUNCH_CHECK("fillDouble");
}

}  // namespace shortgpt::cuda
