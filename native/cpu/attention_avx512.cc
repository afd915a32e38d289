// The attention kernel for AVX-512F: the register-blocked kernel with 16-lane vectors. Compiled
// for x86-64 only, with the target set here (the standard headers are included first, so none
// of their code is compiled for AVX-512), and called only after the run-time CPU check in
// attention.cc.
#if defined(SHORTGPT_X86)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/attention.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif

#define SHORTGPT_ATTN_LANES 16
#define SHORTGPT_ATTN_NV 4  // 4 rows x 4 vectors: 16 zmm accumulators of the 32
#include "cpu/attention_blocked.h"

namespace shortgpt {

void attentionItemsAvx512(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                          int64_t qStride, const float* kt, const float* v, int64_t kvStride, float* out,
                          int64_t outStride, const AttentionShape& shape) {
  attentionItemsBlocked(items, begin, end, q, qStride, kt, v, kvStride, out, outStride, shape);
}

}  // namespace shortgpt

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // SHORTGPT_X86
