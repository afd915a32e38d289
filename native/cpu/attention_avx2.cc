// The attention kernel compiled with -mavx2 -mfma (CMakeLists.txt), called only when the CPU
// has both (cpu_features.cc): the register-blocked kernel with 8-lane vectors.
#define SHORTGPT_ATTN_LANES 8
#define SHORTGPT_ATTN_NV 2  // 4 rows x 2 vectors: 8 ymm accumulators of the 16
#include "cpu/attention_blocked.h"

namespace shortgpt {

void attentionItemsAvx2(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                        int64_t qStride, const float* kt, const float* v, int64_t kvStride, float* out,
                        int64_t outStride, const AttentionShape& shape) {
  attentionItemsBlocked(items, begin, end, q, qStride, kt, v, kvStride, out, outStride, shape);
}

}  // namespace shortgpt
