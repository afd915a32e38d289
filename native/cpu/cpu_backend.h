// The CPU implementation of Backend: the residual stream of every sequence lives in one f32
// buffer [totalTokens, hidden]; a layer runs over batches of whole sequences (bounded scratch),
// with packed multithreaded GEMMs (cpu/gemm.h), blocked attention and fused statistics.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

// The precision of the layers' GEMMs: F32 (exact mode, the default) or BF16 (fast mode: inputs
// rounded to bf16, f32 accumulation, cpu/gemm_bf16.h; the residual stream, norms, attention,
// statistics and lm_head stay f32). Bf16 requires bf16KernelAvailable() (the caller checks).
enum class CpuPrecision { F32, Bf16 };

std::unique_ptr<Backend> createCpuBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, int threads,
                                          CpuPrecision precision = CpuPrecision::F32);

}  // namespace shortgpt
