// The contract between the GEMM driver (gemm.cc) and its micro-kernels (portable in gemm.cc,
// AVX2/FMA in gemm_avx2.cc). Internal to native/cpu.
//
// A micro-kernel computes one tile C[mr x nr] (op)= A[mr x kc] * B[kc x 16], where
//   A is row-major with row stride lda (the activations X, unpacked),
//   B is one packed panel: kc rows of 16 consecutive floats (16 output columns of W^T),
//     zero-padded past the matrix edge, so the kernel always computes 16 columns,
//   C is row-major with row stride ldc; only the first nr (<= 16) columns are written,
//   op is "=" (add == false) or "+=" (add == true).
// Every output element is accumulated over k = 0..kc-1 in order, in its own accumulator, so an
// element's value does not depend on which tile (or thread) computed it.
#pragma once
#include <cstdint>

namespace shortgpt {

constexpr int kGemmMR = 6;   // rows of A per micro-tile: 6 x 2 ymm accumulators = 12 registers
constexpr int kGemmNR = 16;  // columns per packed panel: two 8-float ymm vectors
// K slice: a 256 x 16 panel slice is 16 KiB (a pair, 32 KiB) of L1. Each slice's sum is added
// into Y in turn, so every driver (gemm.cc, gemm_streamed.cc) slices K the same way.
constexpr int64_t kGemmKC = 256;

using GemmMicroKernel = void (*)(int mr, int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, int nr, bool add);

// A pair kernel computes C[mr x (16 + nr1)] from two panels at once: columns 0..15 from b0 (a
// full panel), columns 16..16+nr1-1 from b1; otherwise the same contract.
using GemmPairKernel = void (*)(int mr, int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1,
                                float* c, int64_t ldc, int nr1, bool add);

// The kernels a GemmKernel choice resolves to on this CPU (gemm.cc): pair is null where there is
// no two-panel kernel. Declared, not included: kernel files include this header under target flags.
enum class GemmKernel;
struct GemmKernels {
  GemmMicroKernel micro;
  GemmPairKernel pair;
};
GemmKernels gemmKernels(GemmKernel kernel);
// block[kk * 16 + r] = rows[r * ld + kk] for r < 16, kk < kb (block 32-byte aligned): the AVX2
// transpose where the CPU has it, else a scalar loop (gemm.cc; resolve once per call of the caller).
using TransposeToPanelFn = void (*)(const float* rows, int64_t ld, int64_t kb, float* block);
TransposeToPanelFn transposeToPanelFn();

#if defined(SHORTGPT_X86)
void gemmMicroKernelAvx2(int mr, int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                         int nr, bool add);
// Packing helper: block[kk * 16 + r] = scratch[r * ld + kk] for r < 16, kk < kb; block is
// 32-byte aligned (a packed panel).
void transposeToPanelAvx2(const float* scratch, int64_t ld, int64_t kb, float* block);
// AVX-512F (gemm_avx512.cc): bit-identical to gemmMicroKernelAvx2 column by column.
void gemmPairKernelAvx512(int mr, int64_t kc, const float* a, int64_t lda, const float* b0, const float* b1,
                          float* c, int64_t ldc, int nr1, bool add);
#endif

}  // namespace shortgpt
