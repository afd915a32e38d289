// Causal grouped-query attention with online softmax (Milakov & Gimelshein 2018; the
// FlashAttention recurrence): keys are visited in fixed blocks while each query row keeps a
// running max and sum, so memory is O(sequence) per head and no [seq, seq] matrix exists.
// Correct for any sequence length (the last key block may be partial).
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/gemm.h"  // CacheAlignedAllocator

namespace shortgpt {

struct AttentionShape {
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;  // query head h reads kv head h / (numHeads / numKvHeads)
  int64_t headDim = 0;
  int64_t slidingWindow = 0;  // 0: none; else a query at i sees keys j with i - j < window
  float scale = 0;            // score scale; 0: 1/sqrt(headDim) (Granite sets attention_multiplier)
  // Gemma 2: scores (after the scale) become softcap * tanh(score / softcap); 0: none. Only the
  // portable kernel implements it: causalAttention runs that one when it is set.
  float softcap = 0;
};

// Query rows per parallel work item.
constexpr int64_t kAttentionQueryBlock = 32;

// One work item: a block of query rows of one sequence and one head.
struct AttentionItem {
  int64_t rowBegin, rowEnd;  // rows of this query block
  int64_t seqBegin;          // row of the sequence's position 0
  int64_t head;
  // The blocked kernels only: where the sequence's transposed keys start in the transposed-key
  // buffer (kv head g at ktOffset + g * headDim * ktStride), and their row length (the sequence
  // length rounded up to whole key blocks, zero-padded). The AMX kernel: where the sequence's
  // staged bf16 K and V start, and its keys rounded up to 32 (see attentionItemsAmx).
  int64_t ktOffset = 0, ktStride = 0;
};

// Keys per block of the blocked kernels (the online softmax's step, and ktStride's unit).
constexpr int64_t kAttentionKeyBlock = 64;

// The register-blocked kernel (attention_blocked.h) compiled with AVX2/FMA (attention_avx2.cc)
// and with AVX-512F (attention_avx512.cc), x86-64 builds only; each runs items [begin, end).
// causalAttention chooses at run time: AVX-512 where the CPU has it and SHORTGPT_NO_AVX512 is
// not 1 (as the GEMM), else AVX2, else the portable kernel (attention_kernel.h). The kernels
// differ in vector width, so in the order of their sums; each is bit-identical across thread
// counts. `kt` is the transposed-key buffer causalAttention builds (see AttentionItem).
void attentionItemsAvx512(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                          int64_t qStride, const float* kt, const float* v, int64_t kvStride, float* out,
                          int64_t outStride, const AttentionShape& shape);
void attentionItemsAvx2(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                        int64_t qStride, const float* kt, const float* v, int64_t kvStride, float* out,
                        int64_t outStride, const AttentionShape& shape);

// Rows [seqOffsets[s], seqOffsets[s+1]) belong to sequence s, each starting at position 0.
// Query head h of row r is at q[r * qStride + h * headDim]; kv head g at k/v[r * kvStride +
// g * headDim]; the output of head h goes to out[r * outStride + h * headDim].
// Scale 1/sqrt(headDim), softmax in f32, as transformers' eager_attention_forward.
// `ktScratch` holds the transposed keys of the blocked kernels (grown as needed; the caller keeps
// it across calls so that later layers reuse its pages).
// `queryFrom` (optional, per sequence): rows before seqOffsets[s] + queryFrom[s] need no output
// (shared prefixes: the parent's rows, gathered only as keys); their whole query blocks are
// skipped, their rows in a block that is computed are written too. Other rows are unchanged.
void causalAttention(const float* q, int64_t qStride, const float* k, const float* v, int64_t kvStride,
                     float* out, int64_t outStride, const std::vector<int64_t>& seqOffsets,
                     const AttentionShape& shape, ThreadPool& pool, std::vector<float>& ktScratch,
                     const std::vector<int64_t>* queryFrom = nullptr);

// Fast mode's attention (--precision bf16): causalAttention with Q, K, V and the softmax weights
// rounded to bf16 and both products on AMX tiles, f32 accumulation and f32 softmax
// (attention_amx.cc), where the BF16 GEMMs run on AMX (bf16KernelName() is "amx-bf16"), there is
// no soft-capping, head_dim <= 512 and every key and value is finite in bf16; otherwise exactly
// causalAttention (f32), as also with
// SHORTGPT_BF16_ATTENTION=f32 (read per call; to compare). `kvScratch` holds the staged bf16 K
// and V (64-byte aligned; kept by the caller across calls, as ktScratch).
void causalAttentionBf16(const float* q, int64_t qStride, const float* k, const float* v, int64_t kvStride,
                         float* out, int64_t outStride, const std::vector<int64_t>& seqOffsets,
                         const AttentionShape& shape, ThreadPool& pool, std::vector<float>& ktScratch,
                         std::vector<uint16_t, CacheAlignedAllocator<uint16_t>>& kvScratch, const std::vector<int64_t>* queryFrom = nullptr);

#if defined(SHORTGPT_X86)
// attention_amx.cc. The bf16 K and V of one sequence and kv head take kvBf16AmxElements(keys,
// headDim) values: K's tiles (16 keys x 32 of head_dim each, in pairs of head_dim), then V's
// (32 keys x 16 of head_dim, in pairs of keys), keys padded with zeros to a multiple of 32 and
// head_dim to hdp (a multiple of 32). stageKvBf16Amx writes keys [j0, j0 + 32) of both, and
// returns false when one of them is NaN or +-Inf in bf16 (then a masked key's 0 weight times it
// would still be NaN in rows that must not see it: causalAttentionBf16 runs the f32 kernels).
int64_t kvBf16AmxElements(int64_t keys, int64_t headDim);
bool stageKvBf16Amx(const float* k, const float* v, int64_t kvStride, int64_t keys, int64_t j0, int64_t headDim,
                    uint16_t* kb, uint16_t* vb);
// Items [begin, end) as attentionItemsAvx512, on the staged K/V: item.ktOffset is where its
// sequence's K/V start (kv head g at ktOffset + g * kvBf16AmxElements(keys, headDim)),
// item.ktStride the sequence's keys rounded up to 32.
void attentionItemsAmx(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                       int64_t qStride, const uint16_t* kvBf16, float* out, int64_t outStride,
                       const AttentionShape& shape);
#endif

}  // namespace shortgpt
