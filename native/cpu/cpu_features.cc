#include "cpu/cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <thread>

namespace shortgpt {

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(SHORTGPT_X86) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
#endif
    return f;
  }();
  return features;
}

bool useAvx2Kernels() {
#if defined(SHORTGPT_X86)
  const char* off = std::getenv("SHORTGPT_NO_AVX2");
  if (off != nullptr && std::strcmp(off, "1") == 0) return false;
  return cpuFeatures().avx2 && cpuFeatures().fma;
#else
  return false;
#endif
}

int hardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

std::vector<std::string> cpuFeatureNames() {
  std::vector<std::string> names;
  const CpuFeatures& f = cpuFeatures();
  if (f.avx2) names.push_back("avx2");
  if (f.fma) names.push_back("fma");
  if (f.avx512f) names.push_back("avx512f");
  return names;
}

}  // namespace shortgpt
