// x86 SIMD entry points outside the GEMM (AVX2, F16C, AVX-512F), compiled only on x86-64 and
// called only after a run-time CPU check.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shortgpt {

#if defined(SHORTGPT_X86)
bool cpuHasF16c();
// `src` holds `count` little-endian 16-bit values at any alignment.
void convertF16ToF32Avx2(const unsigned char* src, float* dst, size_t count);
void convertBF16ToF32Avx2(const unsigned char* src, float* dst, size_t count);
// Runs `iterations` rounds of 12 independent 8-lane FMAs; returns a value derived from them so
// the loop cannot be optimised away.
float fmaPeakLoopAvx2(int64_t iterations);
// The same with 16-lane AVX-512 FMAs (peak_avx512.cc; only on CPUs with AVX-512F).
float fmaPeakLoopAvx512(int64_t iterations);
#endif

}  // namespace shortgpt
