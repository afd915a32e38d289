// The register-blocked causal GQA attention kernel, written once with GCC/Clang vector
// extensions and compiled per instruction set: attention_avx2.cc (8-lane vectors, -mavx2 -mfma)
// and attention_avx512.cc (16-lane vectors, AVX-512F). The including file defines
// SHORTGPT_ATTN_LANES and SHORTGPT_ATTN_NV first. Everything has internal linkage, so the
// compilations never merge.
//
// Per work item (a block of query rows of one head), keys are visited in blocks of kBlockKeys
// with an online softmax (running max and sum per row), as attention_kernel.h. What differs:
//  - keys come transposed ([head_dim, keys] per sequence and kv head, built once per call by
//    causalAttention, not once per query block and head);
//  - scores are computed for 4 query rows at once, with the 4 x NV vector accumulators in
//    registers (each key vector loaded once for 4 rows);
//  - P.V likewise accumulates 4 rows x NV vectors of head_dim per V row loaded;
//  - the block max and sum are vector reductions in a fixed lane order (no serial chain);
//  - on the causal diagonal, key vectors past every row's last key are not scored at all.
// The order of every reduction is fixed by the item and the lane count alone, so results do not
// depend on the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "cpu/vec_math.h"

#if !defined(SHORTGPT_ATTN_LANES) || !defined(SHORTGPT_ATTN_NV)
#error "define SHORTGPT_ATTN_LANES and SHORTGPT_ATTN_NV before including attention_blocked.h"
#endif

namespace shortgpt {
namespace {

constexpr int kLanes = SHORTGPT_ATTN_LANES;
constexpr int kNV = SHORTGPT_ATTN_NV;          // vectors per register tile row (scores and P.V)
constexpr int kRows = 4;                       // query rows per register tile
constexpr int64_t kBlockKeys = kAttentionKeyBlock;  // keys per online-softmax block
constexpr int64_t kBlockVecs = kBlockKeys / kLanes;
static_assert(kBlockKeys % (kLanes * kNV) == 0, "a key block must hold whole register tiles");

typedef float VF __attribute__((vector_size(kLanes * 4)));
typedef int32_t VI __attribute__((vector_size(kLanes * 4)));

inline VF loadV(const float* p) {
  VF v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storeV(float* p, VF v) { std::memcpy(p, &v, sizeof v); }
// A plain broadcast: x - (+0) is x for every x (so the compiler drops the subtraction), while
// "VF{} + x" would cost an add (0 + x is not x for x = -0) and an element-wise loop becomes
// masked inserts.
inline VF splat(float x) { return x - VF{}; }
inline VI iota() {
  VI v;
  for (int i = 0; i < kLanes; ++i) v[i] = i;
  return v;
}

// exp(x) for x <= 0, the polynomial of attention_kernel.h's expNonPositive, lane-wise.
inline VF expNonPositiveV(VF x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  return expClampedV<VF, VI>(x);
}

inline float laneMax(VF v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = std::max(m, v[i]);
  return m;
}
inline float laneSum(VF v) {
  float s = v[0];
  for (int i = 1; i < kLanes; ++i) s += v[i];
  return s;
}

// s[r][0 .. nvec*kLanes) = q_r . kt[:, j] for the key vectors [0, nvec) of the block, 4 rows;
// kt's rows (one per head_dim index) are `ld` floats apart.
inline void scoreTile(const float* const* qr, const float* kt, int64_t ld, int64_t hd, int64_t nvec, float* s) {
  for (int64_t v0 = 0; v0 < nvec; v0 += kNV) {
    VF c[kRows][kNV];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) c[r][u] = VF{};
    }
    const float* kcol = kt + v0 * kLanes;
    for (int64_t d = 0; d < hd; ++d) {
      VF kv[kNV];
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) kv[u] = loadV(kcol + d * ld + u * kLanes);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const VF qv = splat(qr[r][d]);
#pragma GCC unroll 8
        for (int u = 0; u < kNV; ++u) c[r][u] += qv * kv[u];
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) storeV(s + r * kBlockKeys + (v0 + u) * kLanes, c[r][u]);
    }
  }
}

// acc[r][0..hd) += sum_{j in [jlo, jhi)} p[r][j] * V[j] for 4 rows (p is 0 outside each row's
// own range, so one key range serves all four). Keys are added in index order.
inline void accumulateTile(float* const* acc, const float* p, int64_t jlo, int64_t jhi, const float* v0,
                           int64_t stride, int64_t hd) {
  int64_t d0 = 0;
  for (; d0 + kNV * kLanes <= hd; d0 += kNV * kLanes) {
    VF c[kRows][kNV];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) c[r][u] = loadV(acc[r] + d0 + u * kLanes);
    }
    for (int64_t j = jlo; j < jhi; ++j) {
      const float* vr = v0 + j * stride + d0;
      VF vv[kNV];
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) vv[u] = loadV(vr + u * kLanes);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const VF pv = splat(p[r * kBlockKeys + j]);
#pragma GCC unroll 8
        for (int u = 0; u < kNV; ++u) c[r][u] += pv * vv[u];
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
      for (int u = 0; u < kNV; ++u) storeV(acc[r] + d0 + u * kLanes, c[r][u]);
    }
  }
  for (; d0 + kLanes <= hd; d0 += kLanes) {
    VF c[kRows];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) c[r] = loadV(acc[r] + d0);
    for (int64_t j = jlo; j < jhi; ++j) {
      const VF vv = loadV(v0 + j * stride + d0);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) c[r] += splat(p[r * kBlockKeys + j]) * vv;
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) storeV(acc[r] + d0, c[r]);
  }
  if (d0 < hd) {  // head_dim not a multiple of the lane count
    for (int r = 0; r < kRows; ++r) {
      for (int64_t j = jlo; j < jhi; ++j) {
        const float pj = p[r * kBlockKeys + j];
        const float* vr = v0 + j * stride;
        for (int64_t d = d0; d < hd; ++d) acc[r][d] += pj * vr[d];
      }
    }
  }
}

inline void attentionItemBlocked(const AttentionItem& w, const float* q, int64_t qStride, const float* ktAll,
                                 const float* v, int64_t kvStride, float* out, int64_t outStride,
                                 const AttentionShape& shape, std::vector<float>& scratch) {
  const int64_t hd = shape.headDim;
  const int64_t kvHead = w.head / (shape.numHeads / shape.numKvHeads);
  const float scale = shape.scale > 0 ? shape.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t rows = w.rowEnd - w.rowBegin;
  const int64_t rowsPadded = (rows + kRows - 1) / kRows * kRows;
  // s/p [kRows, kBlockKeys] | acc [rowsPadded + 1, hd] (the last row is a sink for padding
  // rows) | zeros [hd] (their q) | runMax, runSum [rows].
  const size_t need = static_cast<size_t>(kRows * kBlockKeys + (rowsPadded + 1) * hd + hd + 2 * rows);
  if (scratch.size() < need) scratch.resize(need);
  const float* ktHead = ktAll + w.ktOffset + kvHead * hd * w.ktStride;
  float* s = scratch.data();
  float* acc = s + kRows * kBlockKeys;
  float* sink = acc + rowsPadded * hd;
  float* zeros = sink + hd;
  float* runMax = zeros + hd;
  float* runSum = runMax + rows;
  std::fill(acc, acc + (rowsPadded + 1) * hd + hd, 0.0f);
  std::fill(runMax, runMax + rows, -std::numeric_limits<float>::infinity());
  std::fill(runSum, runSum + rows, 0.0f);

  const int64_t firstPos = w.rowBegin - w.seqBegin;
  const int64_t lastPos = w.rowEnd - 1 - w.seqBegin;
  const int64_t window = shape.slidingWindow;
  // Key blocks start at multiples of kBlockKeys (inside the zero-padded transposed rows); keys
  // before the window's start are masked like any other.
  const int64_t keyStart = (window > 0 ? std::max<int64_t>(0, firstPos - window + 1) : 0) / kBlockKeys * kBlockKeys;
  const VI lane = iota();
  const float negInf = -std::numeric_limits<float>::infinity();

  for (int64_t j0 = keyStart; j0 <= lastPos; j0 += kBlockKeys) {
    const int64_t jn = std::min(kBlockKeys, lastPos + 1 - j0);
    for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
      // Each row's key range [lo, hi) within this block; rows past the item are empty.
      int64_t lo[kRows], hi[kRows];
      int64_t groupLo = kBlockKeys, groupHi = 0;
      const float* qr[kRows];
      float* ar[kRows];
      for (int r = 0; r < kRows; ++r) {
        const int64_t i = i0 + r;
        lo[r] = hi[r] = 0;
        qr[r] = zeros;
        ar[r] = sink;
        if (i >= rows) continue;
        const int64_t pos = firstPos + i;
        lo[r] = std::max<int64_t>(j0, window > 0 ? pos - window + 1 : 0) - j0;
        hi[r] = std::min<int64_t>(j0 + jn, pos + 1) - j0;
        if (lo[r] >= hi[r]) {
          lo[r] = hi[r] = 0;
          continue;
        }
        qr[r] = q + (w.rowBegin + i) * qStride + w.head * hd;
        ar[r] = acc + i * hd;
        groupLo = std::min(groupLo, lo[r]);
        groupHi = std::max(groupHi, hi[r]);
      }
      if (groupLo >= groupHi) continue;
      // Score only the register tiles that some row of the group reaches.
      const int64_t tileKeys = kNV * kLanes;
      const int64_t nvec = (groupHi + tileKeys - 1) / tileKeys * kNV;
      scoreTile(qr, ktHead + j0, w.ktStride, hd, nvec, s);
      for (int r = 0; r < kRows; ++r) {
        float* sr = s + r * kBlockKeys;
        if (lo[r] >= hi[r]) {  // no keys here: p stays 0, the row's state is unchanged
          for (int64_t u = 0; u < nvec; ++u) storeV(sr + u * kLanes, VF{});
          continue;
        }
        const int64_t i = i0 + r;
        VF mx = splat(negInf);
        for (int64_t u = 0; u < nvec; ++u) {
          const VI jj = lane + static_cast<int32_t>(u * kLanes);
          const VF x = loadV(sr + u * kLanes) * scale;
          const auto valid = (jj >= static_cast<int32_t>(lo[r])) & (jj < static_cast<int32_t>(hi[r]));
          const VF xm = valid ? x : splat(negInf);
          storeV(sr + u * kLanes, xm);
          mx = mx > xm ? mx : xm;
        }
        const float newMax = std::max(runMax[i], laneMax(mx));
        const float correction = std::exp(runMax[i] - newMax);  // 0 on the row's first block
        VF sum = VF{};
        for (int64_t u = 0; u < nvec; ++u) {
          const VF xm = loadV(sr + u * kLanes);
          const VF e = expNonPositiveV(xm - newMax);
          const VF pm = xm == splat(negInf) ? VF{} : e;
          storeV(sr + u * kLanes, pm);
          sum += pm;
        }
        runSum[i] = runSum[i] * correction + laneSum(sum);
        runMax[i] = newMax;
        float* a = acc + i * hd;
        for (int64_t d = 0; d < hd; ++d) a[d] *= correction;
      }
      accumulateTile(ar, s, groupLo, groupHi, v + (w.seqBegin + j0) * kvStride + kvHead * hd, kvStride, hd);
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* o = out + (w.rowBegin + i) * outStride + w.head * hd;
    const float inv = 1.0f / runSum[i];
    for (int64_t d = 0; d < hd; ++d) o[d] = acc[i * hd + d] * inv;
  }
}

inline void attentionItemsBlocked(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                                  int64_t qStride, const float* kt, const float* v, int64_t kvStride, float* out,
                                  int64_t outStride, const AttentionShape& shape) {
  thread_local std::vector<float> scratch;
  for (int64_t it = begin; it < end; ++it) {
    attentionItemBlocked(items[static_cast<size_t>(it)], q, qStride, kt, v, kvStride, out, outStride, shape, scratch);
  }
}

}  // namespace
}  // namespace shortgpt
