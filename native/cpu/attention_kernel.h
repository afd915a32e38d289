// The body of causal GQA attention, written so the compiler vectorises it: scores for a block
// of 64 keys come from a transposed key block (the inner loop runs over keys, no reduction),
// exp is a branch-free polynomial, and P.V runs over head_dim. The portable kernel, included by
// attention.cc for CPUs without AVX2/FMA (the x86 kernels are in attention_blocked.h);
// everything here has internal linkage.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/attention.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace shortgpt {
namespace {

constexpr int64_t kKeyBlock = 64;    // keys scored at a time

// exp(x) for x <= 0 (Cephes expf: range reduction by ln 2, degree-5 polynomial; about 1 ulp).
// Branch-free so the loops that call it vectorise; inputs below -87 flush to ~1e-38, which is
// nothing next to the row's largest term (exactly 1).
inline float expNonPositive(float x) {
  x = std::max(x, -87.0f);
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest via 1.5 * 2^23
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// p[j] = exp(s[j] * scale - shift) for j in [lo, hi): the same polynomial as expNonPositive,
// eight lanes at a time in the AVX2 build.
inline void expScores(const float* s, float* p, int64_t lo, int64_t hi, float scale, float shift) {
  int64_t j = lo;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vScale = _mm256_set1_ps(scale), vShift = _mm256_set1_ps(shift);
  for (; j + 8 <= hi; j += 8) {
    __m256 x = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), vScale), vShift);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 q = _mm256_set1_ps(1.9875691500e-4f);
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.3981999507e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.3334519073e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1665795894e-2f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.6666665459e-1f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(q, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    _mm256_storeu_ps(p + j, _mm256_mul_ps(y, _mm256_castsi256_ps(bits)));
  }
#endif
  for (; j < hi; ++j) p[j] = expNonPositive(s[j] * scale - shift);
}

// a[0..hd) += sum_{j in [lo, hi)} p[j] * V[j] (V rows `stride` apart). In the AVX2 build the
// accumulators stay in registers across keys, 32 columns at a time; keys are added in index
// order either way.
inline void accumulatePV(float* a, const float* p, int64_t lo, int64_t hi, const float* v0, int64_t stride, int64_t hd) {
  int64_t d0 = 0;
#if defined(__AVX2__) && defined(__FMA__)
  for (; d0 + 32 <= hd; d0 += 32) {
    __m256 a0 = _mm256_loadu_ps(a + d0), a1 = _mm256_loadu_ps(a + d0 + 8);
    __m256 a2 = _mm256_loadu_ps(a + d0 + 16), a3 = _mm256_loadu_ps(a + d0 + 24);
    for (int64_t j = lo; j < hi; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const float* vr = v0 + j * stride + d0;
      a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr), a0);
      a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 8), a1);
      a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 16), a2);
      a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 24), a3);
    }
    _mm256_storeu_ps(a + d0, a0);
    _mm256_storeu_ps(a + d0 + 8, a1);
    _mm256_storeu_ps(a + d0 + 16, a2);
    _mm256_storeu_ps(a + d0 + 24, a3);
  }
  for (; d0 + 8 <= hd; d0 += 8) {
    __m256 a0 = _mm256_loadu_ps(a + d0);
    for (int64_t j = lo; j < hi; ++j) a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v0 + j * stride + d0), a0);
    _mm256_storeu_ps(a + d0, a0);
  }
#endif
  for (int64_t j = lo; j < hi; ++j) {
    const float pj = p[j];
    const float* vr = v0 + j * stride;
    for (int64_t d = d0; d < hd; ++d) a[d] += pj * vr[d];
  }
}

// One query block of one head: online softmax over key blocks (running max and sum per row).
inline void attentionItem(const AttentionItem& w, const float* q, int64_t qStride, const float* k, const float* v,
                          int64_t kvStride, float* out, int64_t outStride, const AttentionShape& shape,
                          std::vector<float>& scratch) {
  const int64_t hd = shape.headDim;
  const int64_t kvHead = w.head / (shape.numHeads / shape.numKvHeads);
  const float scoreScale = shape.scale > 0 ? shape.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t rows = w.rowEnd - w.rowBegin;
  scratch.resize(static_cast<size_t>(hd * kKeyBlock + 2 * kKeyBlock + rows * (hd + 2)));
  float* kt = scratch.data();            // [hd, kKeyBlock] transposed keys
  float* s = kt + hd * kKeyBlock;        // [kKeyBlock] scores of one row
  float* p = s + kKeyBlock;              // [kKeyBlock] probabilities of one row
  float* acc = p + kKeyBlock;            // [rows, hd] unnormalised outputs
  float* runMax = acc + rows * hd;       // [rows]
  float* runSum = runMax + rows;         // [rows]
  std::fill(acc, acc + rows * hd, 0.0f);
  std::fill(runMax, runMax + rows, -std::numeric_limits<float>::infinity());
  std::fill(runSum, runSum + rows, 0.0f);

  const int64_t firstPos = w.rowBegin - w.seqBegin;
  const int64_t lastPos = w.rowEnd - 1 - w.seqBegin;
  const int64_t window = shape.slidingWindow;
  const int64_t keyStart = window > 0 ? std::max<int64_t>(0, firstPos - window + 1) : 0;

  for (int64_t j0 = keyStart; j0 <= lastPos; j0 += kKeyBlock) {
    const int64_t jn = std::min(kKeyBlock, lastPos + 1 - j0);
    for (int64_t jj = 0; jj < kKeyBlock; ++jj) {
      const float* kr = k + (w.seqBegin + j0 + std::min(jj, jn - 1)) * kvStride + kvHead * hd;
      for (int64_t d = 0; d < hd; ++d) kt[d * kKeyBlock + jj] = kr[d];
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t pos = firstPos + i;
      const int64_t lo = std::max<int64_t>(j0, window > 0 ? pos - window + 1 : 0) - j0;
      const int64_t hi = std::min<int64_t>(j0 + jn, pos + 1) - j0;
      if (lo >= hi) continue;
      const float* qr = q + (w.rowBegin + i) * qStride + w.head * hd;
      for (int64_t jj = 0; jj < kKeyBlock; ++jj) s[jj] = 0.0f;
      for (int64_t d = 0; d < hd; ++d) {
        const float qd = qr[d];
        const float* ktd = kt + d * kKeyBlock;
        for (int64_t jj = 0; jj < kKeyBlock; ++jj) s[jj] += qd * ktd[jj];
      }
      if (shape.softcap > 0) {  // Gemma 2: softcap * tanh(score * scale / softcap), then unscaled
        for (int64_t jj = lo; jj < hi; ++jj) s[jj] = std::tanh(s[jj] * scoreScale / shape.softcap) * shape.softcap;
      }
      const float scale = shape.softcap > 0 ? 1.0f : scoreScale;
      float blockMax = -std::numeric_limits<float>::infinity();
      for (int64_t jj = lo; jj < hi; ++jj) blockMax = std::max(blockMax, s[jj] * scale);
      const float newMax = std::max(runMax[i], blockMax);
      const float correction = std::exp(runMax[i] - newMax);  // 0 on the first block
      // exp in its own loop so it vectorises; the sum runs separately, in key order.
      expScores(s, p, lo, hi, scale, newMax);
      float sum = 0.0f;
      for (int64_t jj = lo; jj < hi; ++jj) sum += p[jj];
      runSum[i] = runSum[i] * correction + sum;
      runMax[i] = newMax;
      float* a = acc + i * hd;
      for (int64_t d = 0; d < hd; ++d) a[d] *= correction;
      accumulatePV(a, p, lo, hi, v + (w.seqBegin + j0) * kvStride + kvHead * hd, kvStride, hd);
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* o = out + (w.rowBegin + i) * outStride + w.head * hd;
    const float inv = 1.0f / runSum[i];
    for (int64_t d = 0; d < hd; ++d) o[d] = acc[i * hd + d] * inv;
  }
}

inline void attentionItems(const std::vector<AttentionItem>& items, int64_t begin, int64_t end, const float* q,
                           int64_t qStride, const float* k, const float* v, int64_t kvStride, float* out,
                           int64_t outStride, const AttentionShape& shape) {
  std::vector<float> scratch;
  for (int64_t it = begin; it < end; ++it) {
    attentionItem(items[static_cast<size_t>(it)], q, qStride, k, v, kvStride, out, outStride, shape, scratch);
  }
}

}  // namespace
}  // namespace shortgpt
