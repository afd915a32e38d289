// The addon's side of the CUDA backend. The addon links no CUDA library: libshortgpt_cuda.so
// (beside this addon, or SHORTGPT_CUDA_LIB) is dlopened on first use and reached through the C
// table of native/cuda/cuda_abi.h.
//   - registerCudaExports: `cudaInfo()` for doctor and lib/engine/device.ts (run it in a child
//     process first: a broken driver may crash the process that probes it).
//   - createCudaBackend: a Backend (core/backend.h) that reads tensor bytes with weights_io and
//     computes on the GPU; what the Session binding builds for `device: 'cuda'`.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

void registerCudaExports(Napi::Env env, Napi::Object exports);

struct CudaBackendOptions {
  int device = 0;
  // How F32 checkpoints multiply: "tf32" (default), "bf16", or "f32" (exact; parity tests).
  std::string f32Gemm = "tf32";
  int64_t batchTokens = 0;         // 0: the backend's default (16384 tokens per chunk)
  uint64_t weightCacheBytes = 0;   // device bytes that may keep layers resident; 0: stream
};

// Reads a Session options object's `device` ("cpu", the default, or "cuda") and `cuda`
// ({device?: ordinal, f32Gemm?: "tf32" | "bf16" | "f32", batchTokens?, weightCacheBytes?}).
// Returns true for "cuda" (filling *out). Throws EngineError ERR_INVALID_ARG naming the option.
// The Session binding uses it to choose createCudaBackend or createCpuBackend.
bool parseCudaSessionOptions(const Napi::Object& sessionOptions, CudaBackendOptions* out);

// Throws EngineError: ERR_CUDA_UNAVAILABLE (no shared object, no driver/device, no cuBLAS, with
// the reason), or whatever the backend reports (ERR_CUDA_OOM, ERR_SHAPE, ...).
std::unique_ptr<Backend> createCudaBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences,
                                           const CudaBackendOptions& options);

}  // namespace shortgpt
