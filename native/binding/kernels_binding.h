// Test and benchmark exports of the CPU kernels (GEMM, dtype conversion, FMA peak).
#pragma once
#include <napi.h>

namespace shortgpt {

// Adds gemmForTest, convertToF32ForTest, benchGemm and measureFmaPeak to `exports`.
void registerKernelExports(Napi::Env env, Napi::Object exports);

}  // namespace shortgpt
