// The CPU implementation of Backend: the residual stream of every sequence lives in one f32
// buffer [totalTokens, hidden]; a layer runs over batches of whole sequences (bounded scratch),
// with packed multithreaded GEMMs (cpu/gemm.h), blocked attention and fused statistics.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

std::unique_ptr<Backend> createCpuBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, int threads);

}  // namespace shortgpt
