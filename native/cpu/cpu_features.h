// Run-time CPU feature detection: the AVX2/FMA kernels are used only where the CPU has both.
#pragma once
#include <string>
#include <vector>

namespace shortgpt {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
};

const CpuFeatures& cpuFeatures();

// True when the AVX2/FMA kernels are compiled in and the CPU runs them, unless the
// environment variable SHORTGPT_NO_AVX2=1 asks for the portable path (for tests and benchmarks).
bool useAvx2Kernels();

// Threads available to the process (hardware concurrency, at least 1).
int hardwareThreads();

std::vector<std::string> cpuFeatureNames();

}  // namespace shortgpt
