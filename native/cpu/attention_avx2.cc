// The attention kernel compiled with -mavx2 -mfma (CMakeLists.txt), called only when the CPU
// has both (cpu_features.cc).
#include "cpu/attention_kernel.h"

namespace shortgpt {

void attentionItemsAvx2(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                        int64_t qStride, const float* k, const float* v, int64_t kvStride, float* out,
                        int64_t outStride, const AttentionShape& shape) {
  attentionItems(items, begin, end, q, qStride, k, v, kvStride, out, outStride, shape);
}

}  // namespace shortgpt
