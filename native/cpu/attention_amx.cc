// Fast mode's attention on AMX tiles (--precision bf16 where the GEMMs run on AMX): the same
// causal GQA attention with online softmax as attention_blocked.h, with Q, K, V and the softmax
// weights P rounded to bf16 and both products (Q K^T and P V) on TDPBF16PS with f32
// accumulation; the scale, mask, running max and sum, and the output stay f32. This is what
// PyTorch's bf16 SDPA does too. At Llama-3.2-1B's shape and 512 tokens the f32 kernel was 13% of
// a fast-mode layer (10.4 ms on 2 cores; this one 3.5 ms).
//
// Per work item (32 query rows of one head), keys are visited in blocks of 32:
//   S [32 x 32] = Q [32 x hdp] K^T: C as 2 x 2 tiles (tmm0..3), Q's two 16-row tiles (tmm4, 5),
//     two key tiles of 16 keys (tmm6, 7), one step per 32 of head_dim (hdp: head_dim rounded up
//     to 32, zero-padded);
//   the online softmax on S's rows in f32 (AVX-512), P in bf16;
//   O [32 x hdp] += P [32 x 32] V: per 32 columns of O, C tiles loaded from the f32 accumulator
//     (already rescaled by the row's correction), P's two row tiles, two V tiles of 16 columns.
// K and V are staged once per call (stageKvBf16Amx) in the tiles' pair layouts. Each output row
// is computed by one item in a fixed order, so results do not depend on the thread count.
#if defined(SHORTGPT_X86)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/finite.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx2,fma")
#endif
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm_bf16_kernels.h"
#include "cpu/vec16.h"

namespace shortgpt {

namespace {

constexpr int64_t kKeys = 32;  // keys per softmax block (two 16-key tiles)
constexpr float kMaxSlack = 8.0f;  // how far scores may exceed the running max before it moves
static_assert(kAttentionQueryBlock == 32, "an item's rows are two 16-row AMX tiles");

// exp(x) for x <= 0, lane-wise: attention_blocked.h's expNonPositiveV at 16 lanes.
inline V16 expNonPositiveV(V16 x) {
  x = x < splat16(-87.0f) ? splat16(-87.0f) : x;
  return expClampedV<V16, I16>(x);
}

inline int64_t roundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

}  // namespace

int64_t kvBf16AmxElements(int64_t keys, int64_t headDim) { return 2 * roundUp(keys, kKeys) * roundUp(headDim, 32); }

bool stageKvBf16Amx(const float* k, const float* v, int64_t kvStride, int64_t keys, int64_t j0, int64_t headDim,
                    uint16_t* kb, uint16_t* vb) {
  bool finite = true;
  const int64_t hdp = roundUp(headDim, 32);
  // K: each 16-key tile is one panel of the GEMM's pair layout (pair row r of d-step u holds
  // (K[key c][u*32 + 2r], K[key c][u*32 + 2r + 1]) for keys c = 0..15): rows in bf16, then
  // stagePanelBf16's transpose. The keys' tiles for d-steps 0, 1, ... follow one another.
  uint16_t rows[16 * 512];  // 16 keys x up to 512 head_dim values (headDim <= 512, checked by the caller)
  for (int64_t t = j0; t < j0 + kKeys; t += 16) {
    const uint16_t* ptrs[16];
    for (int64_t c = 0; c < 16; ++c) {
      const int64_t key = t + c;
      if (key < keys) {
        convertRowsBf16(k + key * kvStride, headDim, 1, headDim, hdp, rows + c * hdp);
        ptrs[c] = rows + c * hdp;
      } else {
        ptrs[c] = nullptr;  // a zero row
      }
    }
    finite &= stagePanelBf16(ptrs, hdp, hdp, kb + t * hdp);
  }
  // V: tile (key step of 32, 16 columns of head_dim): pair row r holds (V[2r][d], V[2r+1][d])
  // for d = 16 columns; V's rows in bf16 first, then pairs interleaved.
  uint16_t vrows[kKeys * 512];
  for (int64_t r = 0; r < kKeys; ++r) {
    const int64_t key = j0 + r;
    if (key < keys) {
      convertRowsBf16(v + key * kvStride, headDim, 1, headDim, hdp, vrows + r * hdp);
    } else {
      std::fill(vrows + r * hdp, vrows + (r + 1) * hdp, uint16_t{0});
    }
  }
  finite &= firstNonFiniteBf16(vrows, kKeys * hdp) < 0;
  uint16_t* dst = vb + j0 * hdp;  // this key step's hdp / 16 tiles of 512 values
  for (int64_t col = 0; col < hdp; col += 16) {
    uint16_t* tile = dst + (col / 16) * 512;
    for (int64_t r = 0; r < kKeys / 2; ++r) {
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vrows + (2 * r) * hdp + col)));
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vrows + (2 * r + 1) * hdp + col)));
      _mm512_storeu_si512(tile + r * 32, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
  return finite;
}

void attentionItemsAmx(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                       int64_t qStride, const uint16_t* kvBf16, float* out, int64_t outStride,
                       const AttentionShape& shape) {
  amxConfigureTiles();
  const int64_t hd = shape.headDim, hdp = roundUp(hd, 32);
  const float scale = shape.scale > 0 ? shape.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const float negInf = -std::numeric_limits<float>::infinity();
  const int64_t window = shape.slidingWindow;
  // Per thread: Q [32 x hdp] bf16, S [32 x 32] f32, P [32 x 32] bf16, O [32 x hdp] f32.
  thread_local std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> qb, pb;
  thread_local std::vector<float, CacheAlignedAllocator<float>> sbuf, acc;
  if (qb.size() < static_cast<size_t>(32 * hdp)) qb.resize(static_cast<size_t>(32 * hdp));
  if (acc.size() < static_cast<size_t>(32 * hdp)) acc.resize(static_cast<size_t>(32 * hdp));
  pb.resize(32 * kKeys);
  sbuf.resize(32 * kKeys);
  const __m512 vScale = _mm512_set1_ps(scale), vNegInf = _mm512_set1_ps(negInf);

  for (int64_t it = begin; it < end; ++it) {
    const AttentionItem& w = items[static_cast<size_t>(it)];
    const int64_t kvHead = w.head / (shape.numHeads / shape.numKvHeads);
    const int64_t rows = w.rowEnd - w.rowBegin;
    const uint16_t* kb = kvBf16 + w.ktOffset + kvHead * 2 * w.ktStride * hdp;
    const uint16_t* vb = kb + w.ktStride * hdp;
    // Q rows in bf16 (rows past the item: zeros, their results unused).
    for (int64_t i = 0; i < 32; ++i) {
      if (i < rows) {
        convertRowsBf16(q + (w.rowBegin + i) * qStride + w.head * hd, hd, 1, hd, hdp, qb.data() + i * hdp);
      } else {
        std::fill(qb.data() + i * hdp, qb.data() + (i + 1) * hdp, uint16_t{0});
      }
    }
    std::fill(acc.begin(), acc.begin() + 32 * hdp, 0.0f);
    std::fill(pb.begin(), pb.end(), uint16_t{0});
    float runMax[32], runSum[32];
    std::fill(runMax, runMax + 32, negInf);
    std::fill(runSum, runSum + 32, 0.0f);

    const int64_t firstPos = w.rowBegin - w.seqBegin, lastPos = w.rowEnd - 1 - w.seqBegin;
    const int64_t keyStart = (window > 0 ? std::max<int64_t>(0, firstPos - window + 1) : 0) / kKeys * kKeys;
    const int64_t qStrideB = hdp * static_cast<int64_t>(sizeof(uint16_t));
    const int64_t accStrideB = hdp * static_cast<int64_t>(sizeof(float));
    for (int64_t j0 = keyStart; j0 <= lastPos; j0 += kKeys) {
      // S = Q K^T for keys [j0, j0 + 32).
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint16_t* k0 = kb + j0 * hdp;  // key tile j0 / 16: hdp / 32 tiles of 512 values
      const uint16_t* k1 = k0 + 16 * hdp;
      for (int64_t u = 0; u < hdp / 32; ++u) {
        _tile_loadd(4, qb.data() + u * 32, qStrideB);
        _tile_loadd(5, qb.data() + 16 * hdp + u * 32, qStrideB);
        _tile_loadd(6, k0 + u * 512, 64);
        _tile_loadd(7, k1 + u * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      float* s = sbuf.data();
      _tile_stored(0, s, kKeys * 4);
      _tile_stored(1, s + 16, kKeys * 4);
      _tile_stored(2, s + 16 * kKeys, kKeys * 4);
      _tile_stored(3, s + 16 * kKeys + 16, kKeys * 4);

      // The online softmax, row by row, in f32 (two zmm per row); P in bf16, rounded to nearest
      // even (masked keys: exactly 0).
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t pos = firstPos + i;
        const int64_t lo = std::max<int64_t>(j0, window > 0 ? pos - window + 1 : 0) - j0;
        const int64_t hi = std::min<int64_t>(j0 + kKeys, pos + 1) - j0;
        uint16_t* pr = pb.data() + i * kKeys;
        if (lo >= hi) {  // no keys of this block: P stays 0, the row's state is unchanged
          _mm512_storeu_si512(pr, _mm512_setzero_si512());
          continue;
        }
        const uint32_t keys = (hi >= 32 ? ~0u : (1u << hi) - 1u) & ~((1u << lo) - 1u);  // lo < hi <= 32
        const __mmask16 m0 = static_cast<__mmask16>(keys), m1 = static_cast<__mmask16>(keys >> 16);
        const __m512 x0 = _mm512_mask_mul_ps(vNegInf, m0, _mm512_loadu_ps(s + i * kKeys), vScale);
        const __m512 x1 = _mm512_mask_mul_ps(vNegInf, m1, _mm512_loadu_ps(s + i * kKeys + 16), vScale);
        // The running max moves only when a score exceeds it by more than kMaxSlack: until then
        // the weights are exp(x - max) <= e^kMaxSlack, exact enough in f32 and bf16, and O is
        // not rescaled (rescaling O with vector stores right before its tiles are loaded again
        // stalled the tile loads). On the row's first block the correction is 0 (O is all 0).
        const float blockMax = _mm512_reduce_max_ps(_mm512_max_ps(x0, x1));
        float correction = 1.0f;
        if (blockMax > runMax[i] + kMaxSlack) {
          correction = std::exp(runMax[i] - blockMax);
          runMax[i] = blockMax;
        }
        const __m512 vMax = _mm512_set1_ps(runMax[i]);
        const V16 e0 = expNonPositiveV(reinterpret_cast<V16>(_mm512_sub_ps(x0, vMax)));
        const V16 e1 = expNonPositiveV(reinterpret_cast<V16>(_mm512_sub_ps(x1, vMax)));
        const __m512 p0 = _mm512_maskz_mov_ps(m0, reinterpret_cast<__m512>(e0));
        const __m512 p1 = _mm512_maskz_mov_ps(m1, reinterpret_cast<__m512>(e1));
        runSum[i] = runSum[i] * correction + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
        if (correction != 1.0f) {
          const __m512 vc = _mm512_set1_ps(correction);
          float* a = acc.data() + i * hdp;
          for (int64_t d = 0; d < hdp; d += 16) _mm512_storeu_ps(a + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), vc));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(pr), roundToBf16(_mm512_castps_si512(p0)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(pr + 16), roundToBf16(_mm512_castps_si512(p1)));
      }

      // O += P V, 32 columns of O at a time.
      const uint16_t* vstep = vb + j0 * hdp;  // hdp / 16 tiles of 512 values
      _tile_loadd(4, pb.data(), kKeys * 2);
      _tile_loadd(5, pb.data() + 16 * kKeys, kKeys * 2);
      for (int64_t d0 = 0; d0 < hdp; d0 += 32) {
        float* c = acc.data() + d0;
        _tile_loadd(0, c, accStrideB);
        _tile_loadd(1, c + 16, accStrideB);
        _tile_loadd(2, c + 16 * hdp, accStrideB);
        _tile_loadd(3, c + 16 * hdp + 16, accStrideB);
        _tile_loadd(6, vstep + (d0 / 16) * 512, 64);
        _tile_loadd(7, vstep + (d0 / 16 + 1) * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        _tile_stored(0, c, accStrideB);
        _tile_stored(1, c + 16, accStrideB);
        _tile_stored(2, c + 16 * hdp, accStrideB);
        _tile_stored(3, c + 16 * hdp + 16, accStrideB);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      float* o = out + (w.rowBegin + i) * outStride + w.head * hd;
      const float inv = 1.0f / runSum[i];
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(i * hdp + d)] * inv;
    }
  }
}

}  // namespace shortgpt

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // SHORTGPT_X86
