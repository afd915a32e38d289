// Which attention kernel a layer runs on the GPU: the tensor-core one (attention_tc.cu) or the
// f32 SIMT one (attention.cu). Host-only and free of CUDA headers on purpose, so the choice is
// unit-tested on machines without a GPU or nvcc (native/tests/host_tests.cc).
//
// The tensor-core kernel needs a 16-bit GEMM dtype, a head_dim it was instantiated for, and its
// dynamic shared memory within the device's opt-in limit per block
// (cudaDevAttrMaxSharedMemoryPerBlockOptin): 163 KiB on sm_80 (A100) and 227 KiB on sm_90, but
// only 99 KiB on sm_86/89/120 (RTX 30/40/50, L4, L40), where head_dim 128 needs 104.75 KiB.
// There the SIMT kernel runs instead of the launch failing with ERR_CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cuda/cuda_abi.h"

namespace shortgpt::cuda {

enum class AttentionKernel { Simt = 0, TensorCore = 1 };

// The tensor-core kernel's tiling (attention_tc.cu static_asserts that it uses these).
constexpr int kTcWarps = 4;
constexpr int kTcRowsPerWarp = 16;
constexpr int kTcBlockQueries = kTcWarps * kTcRowsPerWarp;  // 64
constexpr int kTcTileKeys = 64;

constexpr bool tcAttentionHeadDim(int headDim) {
  return headDim == 16 || headDim == 32 || headDim == 64 || headDim == 96 || headDim == 128;
}

// Bytes of dynamic shared memory of one tensor-core block: K and V tiles and the block's Q
// (elemBytes each), per warp an f32 score tile, a 16-bit probability tile, an f32 output tile
// and three f32 row vectors (max, sum, correction). Same order and sizes as SmemLayout.
constexpr size_t tcAttentionSmemBytes(int headDim, size_t elemBytes) {
  const size_t hd = static_cast<size_t>(headDim);
  return elemBytes * kTcTileKeys * hd * 2 + elemBytes * kTcBlockQueries * hd +
         sizeof(float) * kTcWarps * kTcRowsPerWarp * kTcTileKeys + elemBytes * kTcWarps * kTcRowsPerWarp * kTcTileKeys +
         sizeof(float) * kTcWarps * kTcRowsPerWarp * hd + sizeof(float) * kTcWarps * kTcRowsPerWarp * 3;
}

// gemmDtype: SG_DTYPE_*; maxSmemOptin: the device's cudaDevAttrMaxSharedMemoryPerBlockOptin;
// forceSimt: SHORTGPT_CUDA_ATTENTION=simt.
constexpr AttentionKernel chooseAttentionKernel(int headDim, int gemmDtype, size_t maxSmemOptin, bool forceSimt) {
  if (forceSimt || gemmDtype == SG_DTYPE_F32 || !tcAttentionHeadDim(headDim)) return AttentionKernel::Simt;
  return tcAttentionSmemBytes(headDim, 2) <= maxSmemOptin ? AttentionKernel::TensorCore : AttentionKernel::Simt;
}

// SHORTGPT_CUDA_ATTENTION: "simt" forces the f32 kernel; anything else (or unset) lets
// chooseAttentionKernel decide.
inline bool attentionEnvForcesSimt(const char* value) {
  return value != nullptr && std::strcmp(value, "simt") == 0;
}

}  // namespace shortgpt::cuda
