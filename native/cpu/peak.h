// This machine's single-precision FMA peak, measured, for the benchmark's "fraction of peak".
#pragma once

namespace shortgpt {

// Runs an FMA loop with enough independent accumulators to saturate the FMA pipes, at the vector
// width of the GEMM kernel that runs (gemmKernelName(): 16-lane AVX-512 or 8-lane AVX2 FMAs,
// 4-lane vector multiply-adds for the portable kernel) on `threads` threads at once
// for about 0.2 s, and returns the total GFLOP/s (2 flops per FMA lane): the sum over threads of
// each one's fastest ~30 us batch, so that other load on the machine does not lower it.
double measureFmaPeakGflops(int threads);

}  // namespace shortgpt
