// Causal grouped-query attention, flash-style (Dao et al., 2022): queries in blocks, keys and
// values streamed through shared memory in tiles of 32, softmax computed online (running max m
// and sum l per query, rescaling the accumulator when m grows), so memory is O(length): no
// length x length matrix exists. f32 arithmetic on CUDA cores, the same operations as the CPU
// backend's blocked attention; the GEMM-heavy projections around it run on tensor cores.
//
// Work split: a block = (16 queries of one head) x (8 warps, 2 queries each). For a key tile,
// lane j scores key j against the warp's query, the warp finds the tile max and sum with
// shuffles, then each lane accumulates its slice of head dimensions over the tile's keys.
#include <cmath>
#include <string>

#include "cuda/dtype_device.cuh"
#include "cuda/errors.h"
#include "cuda/kernels.h"

namespace shortgpt::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kQueriesPerWarp = 2;
constexpr int kBlockQueries = kWarps * kQueriesPerWarp;
constexpr int kTileKeys = 32;

// MaxD: head_dim rounded up to a multiple of 32 (64, 128, 256, 512): lane l owns dims l + 32 i.
template <int MaxD>
__global__ void __launch_bounds__(kWarps * 32) flashAttentionKernel(AttentionArgs a) {
  extern __shared__ float smem[];
  const int hd = a.headDim;
  const int kStride = hd + 1;  // padded rows: lane j reading K[j][d] hits distinct banks
  float* Ks = smem;                               // [kTileKeys][hd + 1]
  float* Vs = Ks + kTileKeys * kStride;           // [kTileKeys][hd]
  float* Qs = Vs + kTileKeys * hd;                // [kBlockQueries][hd]

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int head = blockIdx.y;
  const int kvHead = head / (a.numHeads / a.numKvHeads);  // GQA: consecutive query heads share a kv head
  const int qDim = a.numHeads * hd, kvDim = a.numKvHeads * hd;
  const int64_t ld = qDim + 2 * int64_t(kvDim);
  const int64_t qBlock0 = int64_t(blockIdx.x) * kBlockQueries;
  const int64_t qBlockEnd = qBlock0 + kBlockQueries < a.length ? qBlock0 + kBlockQueries : a.length;

  for (int i = threadIdx.x; i < kBlockQueries * hd; i += blockDim.x) {
    const int64_t q = qBlock0 + i / hd;
    Qs[i] = q < a.length ? a.qkv[q * ld + int64_t(head) * hd + (i % hd)] : 0.f;
  }

  constexpr int kSlots = MaxD / 32;
  float acc[kQueriesPerWarp][kSlots];
  float m[kQueriesPerWarp], l[kQueriesPerWarp];
#pragma unroll
  for (int r = 0; r < kQueriesPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int s = 0; s < kSlots; ++s) acc[r][s] = 0.f;
  }

  // Keys any query of this block may see: [first, qBlockEnd).
  int64_t first = 0;
  if (a.slidingWindow > 0 && qBlock0 - a.slidingWindow + 1 > 0) first = qBlock0 - a.slidingWindow + 1;
  first -= first % kTileKeys;

  for (int64_t k0 = first; k0 < qBlockEnd; k0 += kTileKeys) {
    const int tileLen = static_cast<int>(qBlockEnd - k0 < kTileKeys ? qBlockEnd - k0 : kTileKeys);
    __syncthreads();  // previous tile fully consumed (and Qs written, on the first pass)
    for (int i = threadIdx.x; i < tileLen * hd; i += blockDim.x) {
      const int j = i / hd, d = i % hd;
      const float* row = a.qkv + (k0 + j) * ld;
      Ks[j * kStride + d] = row[qDim + int64_t(kvHead) * hd + d];
      Vs[j * hd + d] = row[qDim + kvDim + int64_t(kvHead) * hd + d];
    }
    __syncthreads();

#pragma unroll
    for (int r = 0; r < kQueriesPerWarp; ++r) {
      const int qLocal = warp * kQueriesPerWarp + r;
      const int64_t qi = qBlock0 + qLocal;
      if (qi >= a.length) continue;  // warp-uniform
      const int64_t kj = k0 + lane;
      const bool valid = lane < tileLen && kj <= qi && (a.slidingWindow <= 0 || qi - kj < a.slidingWindow);
      float s = -INFINITY;
      if (valid) {
        const float* q = Qs + qLocal * hd;
        const float* k = Ks + lane * kStride;
        float dot = 0.f;
        for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
        s = dot * a.scale;
      }
      const float tileMax = warpMax(s);
      if (tileMax == -INFINITY) continue;  // every key of the tile masked for this query
      const float mNew = fmaxf(m[r], tileMax);
      const float corr = expf(m[r] - mNew);  // m = -inf on the first visible tile: corr = 0
      const float p = valid ? expf(s - mNew) : 0.f;
      l[r] = l[r] * corr + warpSum(p);
#pragma unroll
      for (int sl = 0; sl < kSlots; ++sl) acc[r][sl] *= corr;
      for (int j = 0; j < tileLen; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int sl = 0; sl < kSlots; ++sl) {
          const int d = lane + 32 * sl;
          if (d < hd) acc[r][sl] += pj * Vs[j * hd + d];
        }
      }
      m[r] = mNew;
    }
  }

#pragma unroll
  for (int r = 0; r < kQueriesPerWarp; ++r) {
    const int64_t qi = qBlock0 + warp * kQueriesPerWarp + r;
    if (qi >= a.length) continue;
    const float inv = 1.f / l[r];  // l > 0: a query always sees itself
#pragma unroll
    for (int sl = 0; sl < kSlots; ++sl) {
      const int d = lane + 32 * sl;
      if (d < hd) storeAs(a.out, a.outDt, qi * qDim + int64_t(head) * hd + d, acc[r][sl] * inv);
    }
  }
}

template <int MaxD>
void launchFor(const AttentionArgs& a, cudaStream_t stream) {
  const size_t smem = sizeof(float) * (kTileKeys * (a.headDim + 1) + kTileKeys * a.headDim + kBlockQueries * a.headDim);
  // Above 48 KiB of dynamic shared memory (head_dim 256) a kernel must opt in, per device; the
  // call is cheap next to the kernel, so it is made on every launch rather than cached.
  SG_CUDA_CHECK(cudaFuncSetAttribute(flashAttentionKernel<MaxD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>((a.length + kBlockQueries - 1) / kBlockQueries), static_cast<unsigned>(a.numHeads));
  flashAttentionKernel<MaxD><<<grid, kWarps * 32, smem, stream>>>(a);
  SG_CUDA_LAUNCH_CHECK("flashAttention");
}

}  // namespace

void launchAttention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.length <= 0) return;
  if (a.numKvHeads <= 0 || a.numHeads % a.numKvHeads != 0)
    throw CudaFailure("ERR_SHAPE", "num_attention_heads " + std::to_string(a.numHeads) +
                                       " is not a multiple of num_key_value_heads " + std::to_string(a.numKvHeads));
  if (a.headDim <= 64) return launchFor<64>(a, stream);
  if (a.headDim <= 128) return launchFor<128>(a, stream);
  if (a.headDim <= 256) return launchFor<256>(a, stream);
  throw CudaFailure("ERR_SHAPE", "head_dim " + std::to_string(a.headDim) + " exceeds the CUDA attention kernel's 256");
}

}  // namespace shortgpt::cuda
