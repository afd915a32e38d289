#include "cpu/attention.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/attention_kernel.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm_bf16.h"

namespace shortgpt {

namespace {

// Work items are (sequence, head, query block): each output row is written by exactly one item,
// computed in a fixed order, so results do not depend on the thread count. Causal rows late in a
// sequence see more keys, so equal item counts are unequal work. The pool splits [0, n) into
// contiguous chunks, one per thread; so items are dealt into one bucket per thread, largest first
// to the least-loaded bucket (LPT scheduling), and each thread runs one bucket. Only the schedule
// changes: every item's arithmetic is the same.
std::vector<std::vector<AttentionItem>> scheduleItems(const std::vector<int64_t>& seqOffsets, const AttentionShape& shape,
                                                      int64_t threads, const std::vector<int64_t>* queryFrom) {
  std::vector<AttentionItem> items;
  for (size_t s = 0; s + 1 < seqOffsets.size(); ++s) {
    for (int64_t r = seqOffsets[s]; r < seqOffsets[s + 1]; r += kAttentionQueryBlock) {
      if (queryFrom && r + kAttentionQueryBlock <= seqOffsets[s] + (*queryFrom)[s]) continue;  // no row wanted
      for (int64_t h = 0; h < shape.numHeads; ++h) {
        items.push_back({r, std::min(r + kAttentionQueryBlock, seqOffsets[s + 1]), seqOffsets[s], h});
      }
    }
  }
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
  return buckets;
}

// The sequence whose rows start at seqBegin.
size_t sequenceOf(const std::vector<int64_t>& seqOffsets, int64_t seqBegin) {
  return static_cast<size_t>(std::upper_bound(seqOffsets.begin(), seqOffsets.end(), seqBegin) - seqOffsets.begin() - 1);
}

}  // namespace

void causalAttention(const float* q, int64_t qStride, const float* k, const float* v, int64_t kvStride,
                     float* out, int64_t outStride, const std::vector<int64_t>& seqOffsets,
                     const AttentionShape& shape, ThreadPool& pool, std::vector<float>& ktBuf,
                     const std::vector<int64_t>* queryFrom) {
  const int64_t threads = std::max(1, pool.threads());
  std::vector<std::vector<AttentionItem>> buckets = scheduleItems(seqOffsets, shape, threads, queryFrom);
#if defined(SHORTGPT_X86)
  // Soft-capping (Gemma 2) is implemented by the portable kernel only.
  const bool avx2 = useAvx2Kernels() && shape.softcap <= 0;
  const char* noAvx512 = std::getenv("SHORTGPT_NO_AVX512");
  const bool avx512 = avx2 && cpuFeatures().avx512f && (noAvx512 == nullptr || std::strcmp(noAvx512, "1") != 0);
#else
  const bool avx2 = false, avx512 = false;
#endif
  // The blocked kernels read keys transposed, [headDim, keys] per sequence and kv head, rows
  // padded with zeros to whole key blocks: built here once, in parallel, instead of per query
  // block and query head.
  if (avx512 || avx2) {
    const int64_t hd = shape.headDim, kvHeads = shape.numKvHeads;
    std::vector<int64_t> ktOffsets(seqOffsets.size(), 0), ktStrides(seqOffsets.size(), 0);
    int64_t total = 0;
    for (size_t s = 0; s + 1 < seqOffsets.size(); ++s) {
      const int64_t len = seqOffsets[s + 1] - seqOffsets[s];
      ktStrides[s] = (len + kAttentionKeyBlock - 1) / kAttentionKeyBlock * kAttentionKeyBlock;
      ktOffsets[s] = total;
      total += kvHeads * hd * ktStrides[s];
    }
    if (ktBuf.size() < static_cast<size_t>(total)) ktBuf.resize(static_cast<size_t>(total));
    // One task per (sequence, kv head, key block).
    std::vector<int64_t> taskStart;  // first task of each sequence
    int64_t tasks = 0;
    for (size_t s = 0; s + 1 < seqOffsets.size(); ++s) {
      taskStart.push_back(tasks);
      tasks += kvHeads * (ktStrides[s] / kAttentionKeyBlock);
    }
    taskStart.push_back(tasks);
    float* kt = ktBuf.data();
    pool.parallelFor(tasks, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        const size_t s = static_cast<size_t>(std::upper_bound(taskStart.begin(), taskStart.end(), t) - taskStart.begin() - 1);
        const int64_t blocks = ktStrides[s] / kAttentionKeyBlock, local = t - taskStart[s];
        const int64_t g = local / blocks, j0 = (local % blocks) * kAttentionKeyBlock;
        const int64_t len = seqOffsets[s + 1] - seqOffsets[s];
        float* dst = kt + ktOffsets[s] + g * hd * ktStrides[s];
        // Key-inner: each destination row segment is written contiguously.
        const int64_t jEnd = std::min(j0 + kAttentionKeyBlock, len);
        const float* k0 = k + seqOffsets[s] * kvStride + g * hd;
        for (int64_t d = 0; d < hd; ++d) {
          float* row = dst + d * ktStrides[s];
          for (int64_t j = j0; j < jEnd; ++j) row[j] = k0[j * kvStride + d];
          for (int64_t j = std::max(jEnd, j0); j < j0 + kAttentionKeyBlock; ++j) row[j] = 0.0f;
        }
      }
    });
    for (auto& bucket : buckets) {
      for (AttentionItem& it : bucket) {
        const size_t s = sequenceOf(seqOffsets, it.seqBegin);
        it.ktOffset = ktOffsets[s];
        it.ktStride = ktStrides[s];
      }
    }
  }
  const float* kt = ktBuf.data();
  pool.parallelFor(threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const std::vector<AttentionItem>& bucket = buckets[static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(bucket.size());
#if defined(SHORTGPT_X86)
      if (avx512) {
        attentionItemsAvx512(bucket, 0, n, q, qStride, kt, v, kvStride, out, outStride, shape);
        continue;
      }
      if (avx2) {
        attentionItemsAvx2(bucket, 0, n, q, qStride, kt, v, kvStride, out, outStride, shape);
        continue;
      }
#endif
      (void)avx2;
      attentionItems(bucket, 0, n, q, qStride, k, v, kvStride, out, outStride, shape);
    }
  });
}

void causalAttentionBf16(const float* q, int64_t qStride, const float* k, const float* v, int64_t kvStride,
                         float* out, int64_t outStride, const std::vector<int64_t>& seqOffsets,
                         const AttentionShape& shape, ThreadPool& pool, std::vector<float>& ktScratch,
                         std::vector<uint16_t, CacheAlignedAllocator<uint16_t>>& kvScratch, const std::vector<int64_t>* queryFrom) {
#if defined(SHORTGPT_X86)
  const char* force = std::getenv("SHORTGPT_BF16_ATTENTION");
  const bool amx = std::strcmp(bf16KernelName(), "amx-bf16") == 0 && shape.softcap <= 0 && shape.headDim > 0 &&
                   shape.headDim <= 512 && !(force != nullptr && std::strcmp(force, "f32") == 0);
  if (amx) {
    // K and V in bf16 tiles, once per call: one task per (sequence, kv head, 32 keys).
    const int64_t hd = shape.headDim, kvHeads = shape.numKvHeads, seqs = static_cast<int64_t>(seqOffsets.size()) - 1;
    std::vector<int64_t> offsets(static_cast<size_t>(seqs), 0), taskStart(static_cast<size_t>(seqs) + 1, 0);
    int64_t total = 0;
    for (int64_t s = 0; s < seqs; ++s) {
      const int64_t len = seqOffsets[static_cast<size_t>(s) + 1] - seqOffsets[static_cast<size_t>(s)];
      offsets[static_cast<size_t>(s)] = total;
      total += kvHeads * kvBf16AmxElements(len, hd);
      taskStart[static_cast<size_t>(s) + 1] = taskStart[static_cast<size_t>(s)] + kvHeads * ((len + 31) / 32);
    }
    if (kvScratch.size() < static_cast<size_t>(total)) kvScratch.resize(static_cast<size_t>(total));
    uint16_t* kv = kvScratch.data();
    std::atomic<bool> finite{true};
    pool.parallelFor(taskStart.back(), [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        const size_t s = static_cast<size_t>(std::upper_bound(taskStart.begin(), taskStart.end(), t) - taskStart.begin() - 1);
        const int64_t len = seqOffsets[s + 1] - seqOffsets[s], steps = (len + 31) / 32, local = t - taskStart[s];
        const int64_t g = local / steps, j0 = (local % steps) * 32;
        uint16_t* kb = kv + offsets[s] + g * kvBf16AmxElements(len, hd);
        uint16_t* vb = kb + kvBf16AmxElements(len, hd) / 2;
        const float* ks = k + seqOffsets[s] * kvStride + g * hd;
        const float* vs = v + seqOffsets[s] * kvStride + g * hd;
        if (!stageKvBf16Amx(ks, vs, kvStride, len, j0, hd, kb, vb)) finite.store(false, std::memory_order_relaxed);
      }
    });
    if (finite.load()) {
      const int64_t threads = std::max(1, pool.threads());
      std::vector<std::vector<AttentionItem>> buckets = scheduleItems(seqOffsets, shape, threads, queryFrom);
      for (auto& bucket : buckets) {
        for (AttentionItem& it : bucket) {
          const size_t s = sequenceOf(seqOffsets, it.seqBegin);
          it.ktOffset = offsets[s];
          it.ktStride = (seqOffsets[s + 1] - seqOffsets[s] + 31) / 32 * 32;
        }
      }
      pool.parallelFor(threads, [&](int64_t begin, int64_t end, int) {
        for (int64_t b = begin; b < end; ++b) {
          const std::vector<AttentionItem>& bucket = buckets[static_cast<size_t>(b)];
          attentionItemsAmx(bucket, 0, static_cast<int64_t>(bucket.size()), q, qStride, kv, out, outStride, shape);
        }
      });
      return;
    }
    // A NaN or Inf key or value (activations that overflowed): the f32 kernels, which never
    // multiply a key a row must not see, keep it out of the rows before it.
  }
#endif
  (void)kvScratch;
  causalAttention(q, qStride, k, v, kvStride, out, outStride, seqOffsets, shape, pool, ktScratch, queryFrom);
}

}  // namespace shortgpt
