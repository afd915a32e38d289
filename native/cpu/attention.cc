#include "cpu/attention.h"

#include <algorithm>

#include "cpu/attention_kernel.h"
#include "cpu/cpu_features.h"

namespace shortgpt {

void causalAttention(const float* q, int64_t qStride, const float* k, const float* v, int64_t kvStride,
                     float* out, int64_t outStride, const std::vector<int64_t>& seqOffsets,
                     const AttentionShape& shape, ThreadPool& pool) {
  // Work items are (sequence, head, query block): each output row is written by exactly one
  // item, computed in a fixed order, so results do not depend on the thread count.
  std::vector<AttentionItem> items;
  for (size_t s = 0; s + 1 < seqOffsets.size(); ++s) {
    for (int64_t r = seqOffsets[s]; r < seqOffsets[s + 1]; r += kAttentionQueryBlock) {
      for (int64_t h = 0; h < shape.numHeads; ++h) {
        items.push_back({r, std::min(r + kAttentionQueryBlock, seqOffsets[s + 1]), seqOffsets[s], h});
      }
    }
  }
  // Causal rows late in a sequence see more keys, so equal item counts are unequal work. The
  // pool splits [0, n) into contiguous chunks, one per thread; so items are dealt into one
  // bucket per thread, largest first to the least-loaded bucket (LPT scheduling), and each
  // thread runs one bucket. Only the schedule changes: every item's arithmetic is the same.
  const int64_t threads = std::max(1, pool.threads());
  const int64_t window = shape.slidingWindow;
  auto cost = [window](const AttentionItem& it) {
    // Rows x the keys the block's rows reach together (what the kernel iterates over).
    const int64_t last = it.rowEnd - 1 - it.seqBegin, first = it.rowBegin - it.seqBegin;
    const int64_t keyStart = window > 0 ? std::max<int64_t>(0, first - window + 1) : 0;
    return (it.rowEnd - it.rowBegin) * (last + 1 - keyStart);
  };
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost(items[a]) > cost(items[b]); });
  std::vector<std::vector<AttentionItem>> buckets(static_cast<size_t>(threads));
  std::vector<int64_t> load(static_cast<size_t>(threads), 0);
  for (size_t i : order) {
    const size_t b = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    buckets[b].push_back(items[i]);
    load[b] += cost(items[i]);
  }
#if defined(SHORTGPT_X86)
  const bool avx2 = useAvx2Kernels();
#else
  const bool avx2 = false;
#endif
  pool.parallelFor(threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const std::vector<AttentionItem>& bucket = buckets[static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(bucket.size());
#if defined(SHORTGPT_X86)
      if (avx2) {
        attentionItemsAvx2(bucket, 0, n, q, qStride, k, v, kvStride, out, outStride, shape);
        continue;
      }
#endif
      (void)avx2;
      attentionItems(bucket, 0, n, q, qStride, k, v, kvStride, out, outStride, shape);
    }
  });
}

}  // namespace shortgpt
