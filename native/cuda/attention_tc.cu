// Causal grouped-query attention on tensor cores (WMMA, BF16/F16 inputs, F32 accumulation and
// softmax), flash-style like attention.cu: a block = 64 queries of one head (4 warps x 16 rows),
// keys and values in tiles of 64 through shared memory, online softmax per row. Used when the
// layer's GEMM dtype is 16-bit, head_dim is 16/32/64/96/128 and the block's shared memory fits
// the device (attention_select.h: not head_dim 128 on sm_86/89/120); otherwise, or with
// SHORTGPT_CUDA_ATTENTION=simt, the f32 kernel of attention.cu runs.
//
// WMMA accumulator layouts are opaque, so the per-row rescaling of the online softmax happens on
// the warp's output rows kept in shared memory (f32): per key tile, S = Q K^T (mma) -> shared ->
// mask, scale, running max/sum per row -> P (16-bit) -> O = O * corr + P V (mma, O reloaded).
#include <mma.h>

#include <cmath>
#include <string>

#include "cuda/attention_select.h"
#include "cuda/dtype_device.cuh"
#include "cuda/errors.h"
#include "cuda/kernels.h"

namespace shortgpt::cuda {
namespace {

using namespace nvcuda;

// The tiling is shared with attention_select.h, which decides from it whether a device's
// shared memory fits the kernel (host-only, unit-tested without a GPU).
constexpr int kWarps = kTcWarps;
constexpr int kRows = kTcRowsPerWarp;     // query rows per warp
constexpr int kBlockQ = kTcBlockQueries;  // 64
constexpr int kTile = kTcTileKeys;        // keys per tile

template <typename T>
struct SmemLayout {
  int hd;
  __host__ __device__ constexpr size_t kOff() const { return 0; }
  __host__ __device__ constexpr size_t vOff() const { return kOff() + sizeof(T) * kTile * hd; }
  __host__ __device__ constexpr size_t qOff() const { return vOff() + sizeof(T) * kTile * hd; }
  __host__ __device__ constexpr size_t sOff() const { return qOff() + sizeof(T) * kBlockQ * hd; }            // f32 [warps][16][64]
  __host__ __device__ constexpr size_t pOff() const { return sOff() + sizeof(float) * kWarps * kRows * kTile; } // T [warps][16][64]
  __host__ __device__ constexpr size_t oOff() const { return pOff() + sizeof(T) * kWarps * kRows * kTile; }   // f32 [warps][16][hd]
  __host__ __device__ constexpr size_t mOff() const { return oOff() + sizeof(float) * kWarps * kRows * hd; }   // f32 [warps][16] x 3
  __host__ __device__ constexpr size_t bytes() const { return mOff() + sizeof(float) * kWarps * kRows * 3; }
};

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half_rn(v); }

// qkv16: [length, qDim + 2 kvDim] in T (after bias, q/k norm and RoPE, like qkv f32).
template <typename T, int HD>
__global__ void __launch_bounds__(kWarps * 32) tcAttentionKernel(const T* qkv16, AttentionArgs a) {
  extern __shared__ __align__(128) unsigned char smem[];
  const SmemLayout<T> L{HD};
  T* Ks = reinterpret_cast<T*>(smem + L.kOff());
  T* Vs = reinterpret_cast<T*>(smem + L.vOff());
  T* Qs = reinterpret_cast<T*>(smem + L.qOff());
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* S = reinterpret_cast<float*>(smem + L.sOff()) + warp * kRows * kTile;
  T* Pm = reinterpret_cast<T*>(smem + L.pOff()) + warp * kRows * kTile;
  float* O = reinterpret_cast<float*>(smem + L.oOff()) + warp * kRows * HD;
  float* mRow = reinterpret_cast<float*>(smem + L.mOff()) + warp * kRows * 3;
  float* lRow = mRow + kRows;
  float* cRow = lRow + kRows;

  const int head = blockIdx.y;
  const int kvHead = head / (a.numHeads / a.numKvHeads);
  const int qDim = a.numHeads * HD, kvDim = a.numKvHeads * HD;
  const int64_t ld = qDim + 2 * int64_t(kvDim);
  const int64_t q0 = int64_t(blockIdx.x) * kBlockQ;
  const int64_t qEnd = q0 + kBlockQ < a.length ? q0 + kBlockQ : a.length;

  for (int i = threadIdx.x; i < kBlockQ * HD; i += blockDim.x) {
    const int64_t q = q0 + i / HD;
    Qs[i] = q < a.length ? qkv16[q * ld + int64_t(head) * HD + (i % HD)] : fromFloat<T>(0.f);
  }
  for (int i = lane; i < kRows * HD; i += 32) O[i] = 0.f;
  if (lane < kRows) {
    mRow[lane] = -INFINITY;
    lRow[lane] = 0.f;
  }
  int64_t first = 0;
  if (a.slidingWindow > 0 && q0 - a.slidingWindow + 1 > 0) first = q0 - a.slidingWindow + 1;
  first -= first % kTile;
  const int64_t myRow0 = q0 + warp * kRows;

  for (int64_t k0 = first; k0 < qEnd; k0 += kTile) {
    __syncthreads();  // the previous tile's K/V are consumed; Qs written on the first pass
    for (int i = threadIdx.x; i < kTile * HD; i += blockDim.x) {
      const int j = i / HD, d = i % HD;
      const int64_t key = k0 + j;
      const bool in = key < qEnd;  // keys past the block's last query are masked for all its rows
      const T* row = qkv16 + key * ld;
      Ks[i] = in ? row[qDim + int64_t(kvHead) * HD + d] : fromFloat<T>(0.f);  // zeros: no NaN in P*V
      Vs[i] = in ? row[qDim + kvDim + int64_t(kvHead) * HD + d] : fromFloat<T>(0.f);
    }
    __syncthreads();
    if (myRow0 >= a.length) continue;  // warp-uniform; no block-wide barrier below this point

    // S[16 x 64] = Q[16 x HD] K^T
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> sAcc[kTile / 16];
#pragma unroll
    for (int n = 0; n < kTile / 16; ++n) wmma::fill_fragment(sAcc[n], 0.f);
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa;
      wmma::load_matrix_sync(qa, Qs + (warp * kRows) * HD + kk * 16, HD);
#pragma unroll
      for (int n = 0; n < kTile / 16; ++n) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kb;  // K row-major = K^T col-major
        wmma::load_matrix_sync(kb, Ks + (n * 16) * HD + kk * 16, HD);
        wmma::mma_sync(sAcc[n], qa, kb, sAcc[n]);
      }
    }
#pragma unroll
    for (int n = 0; n < kTile / 16; ++n) wmma::store_matrix_sync(S + n * 16, sAcc[n], kTile, wmma::mem_row_major);
    __syncwarp();

    // Online softmax, one row at a time across the warp: lane owns columns lane and lane + 32.
    for (int r = 0; r < kRows; ++r) {
      const int64_t qi = myRow0 + r;
      float s[2];
      bool ok[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t kj = k0 + lane + 32 * c;
        ok[c] = qi < a.length && kj <= qi && (a.slidingWindow <= 0 || qi - kj < a.slidingWindow);
        s[c] = ok[c] ? S[r * kTile + lane + 32 * c] * a.scale : -INFINITY;
      }
      const float tileMax = warpMax(fmaxf(s[0], s[1]));
      const float mOld = mRow[r];
      float corr = 1.f, p0 = 0.f, p1 = 0.f, mNew = mOld;
      if (tileMax != -INFINITY) {
        mNew = fmaxf(mOld, tileMax);
        corr = expf(mOld - mNew);  // mOld = -inf: 0
        p0 = ok[0] ? expf(s[0] - mNew) : 0.f;
        p1 = ok[1] ? expf(s[1] - mNew) : 0.f;
      }
      const float rowSum = warpSum(p0 + p1);
      Pm[r * kTile + lane] = fromFloat<T>(p0);
      Pm[r * kTile + lane + 32] = fromFloat<T>(p1);
      __syncwarp();
      if (lane == 0) {
        mRow[r] = mNew;
        lRow[r] = lRow[r] * corr + rowSum;
        cRow[r] = corr;
      }
    }
    __syncwarp();
    for (int i = lane; i < kRows * HD; i += 32) O[i] *= cRow[i / HD];
    __syncwarp();

    // O[16 x HD] += P[16 x 64] V[64 x HD]
#pragma unroll
    for (int j = 0; j < HD / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> oAcc;
      wmma::load_matrix_sync(oAcc, O + j * 16, HD, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTile / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vb;
        wmma::load_matrix_sync(pa, Pm + kk * 16, kTile);
        wmma::load_matrix_sync(vb, Vs + (kk * 16) * HD + j * 16, HD);
        wmma::mma_sync(oAcc, pa, vb, oAcc);
      }
      wmma::store_matrix_sync(O + j * 16, oAcc, HD, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (myRow0 >= a.length) return;
  __syncwarp();
  for (int i = lane; i < kRows * HD; i += 32) {
    const int r = i / HD, d = i % HD;
    const int64_t qi = myRow0 + r;
    if (qi < a.length) storeAs(a.out, a.outDt, qi * qDim + int64_t(head) * HD + d, O[i] / lRow[r]);
  }
}

template <typename T, int HD>
void launchTc(const void* qkv16, const AttentionArgs& a, cudaStream_t stream) {
  constexpr size_t smem = SmemLayout<T>{HD}.bytes();
  static_assert(smem == tcAttentionSmemBytes(HD, sizeof(T)), "attention_select.h must size this kernel's shared memory");
  SG_CUDA_CHECK(cudaFuncSetAttribute(tcAttentionKernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  dim3 grid(static_cast<unsigned>((a.length + kBlockQ - 1) / kBlockQ), static_cast<unsigned>(a.numHeads));
  tcAttentionKernel<T, HD><<<grid, kWarps * 32, smem, stream>>>(static_cast<const T*>(qkv16), a);
  SG_CUDA_LAUNCH_CHECK("tcAttention");
}

template <typename T>
void dispatchHd(const void* qkv16, const AttentionArgs& a, cudaStream_t stream) {
  switch (a.headDim) {
    case 64: return launchTc<T, 64>(qkv16, a, stream);
    case 128: return launchTc<T, 128>(qkv16, a, stream);
    case 32: return launchTc<T, 32>(qkv16, a, stream);
    case 16: return launchTc<T, 16>(qkv16, a, stream);
    default: return launchTc<T, 96>(qkv16, a, stream);  // guarded by tensorCoreAttentionSupports
  }
}

}  // namespace

bool tensorCoreAttentionSupports(int headDim, int dt) { return dt != SG_DTYPE_F32 && tcAttentionHeadDim(headDim); }

void launchAttentionTc(const void* qkv16, const AttentionArgs& a, cudaStream_t stream) {
  if (a.length <= 0) return;
  if (!tensorCoreAttentionSupports(a.headDim, a.outDt))
    throw CudaFailure("ERR_SHAPE", "tensor-core attention: head_dim " + std::to_string(a.headDim) + " unsupported");
  if (a.outDt == SG_DTYPE_BF16) dispatchHd<__nv_bfloat16>(qkv16, a, stream);
  else dispatchHd<__half>(qkv16, a, stream);
}

}  // namespace shortgpt::cuda
