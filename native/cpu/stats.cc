#include "cpu/stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace shortgpt {

namespace {

TokenStats fromSums(double dot, double inSq, double outSq, double diffSq) {
  const double pi = 3.14159265358979323846;
  TokenStats t;
  const double denom = std::sqrt(inSq) * std::sqrt(outSq);
  t.nonFinite = !(std::isfinite(inSq) && std::isfinite(outSq));
  // The authors' scoring replaces NaN cosines with 0.5 before averaging; here only a zero-norm
  // state gets that (for finite states denom > 0 exactly when both norms are, and |dot| <= denom,
  // so this is the same set of tokens as their NaN test). NaN/Inf states are flagged above and
  // never averaged.
  t.undefinedCos = !t.nonFinite && !(denom > 0);
  t.cos = t.undefinedCos ? 0.5 : std::clamp(dot / denom, -1.0, 1.0);
  t.angular = std::acos(t.cos) / pi;
  // An all-zero output makes the ratio undefined: count no change as 0, any change as 1.
  t.relMag = outSq > 0 ? std::sqrt(diffSq) / std::sqrt(outSq) : (diffSq > 0 ? 1.0 : 0.0);
  return t;
}


// The four sums of one token, each as 4 partial sums (element i to partial i % 4, combined in a
// fixed order at the end) rather than one serial chain, so they vectorise; the order depends only
// on dim.
inline TokenStats sumsOf(const float* in, const float* out, int64_t dim) {
  constexpr int L = 4;
  double dot[L] = {0, 0, 0, 0}, inSq[L] = {0, 0, 0, 0}, outSq[L] = {0, 0, 0, 0}, diffSq[L] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + L <= dim; i += L) {
    for (int l = 0; l < L; ++l) {
      const double a = in[i + l], b = out[i + l], d = b - a;
      dot[l] += a * b;
      inSq[l] += a * a;
      outSq[l] += b * b;
      diffSq[l] += d * d;
    }
  }
  for (int l = 0; i < dim; ++i, ++l) {
    const double a = in[i], b = out[i], d = b - a;
    dot[l] += a * b;
    inSq[l] += a * a;
    outSq[l] += b * b;
    diffSq[l] += d * d;
  }
  auto total = [](const double* p) { return (p[0] + p[1]) + (p[2] + p[3]); };
  return fromSums(total(dot), total(inSq), total(outSq), total(diffSq));
}

}  // namespace

TokenStats tokenStats(const float* in, const float* out, int64_t dim) { return sumsOf(in, out, dim); }

void residualWithStats(float* h, const float* mid, const float* delta, int64_t rows, int64_t dim,
                       TokenStats* perToken, ThreadPool& pool) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> out(static_cast<size_t>(dim));
    for (int64_t r = begin; r < end; ++r) {
      float* hr = h + r * dim;
      const float* m = mid + r * dim;
      const float* d = delta + r * dim;
      for (int64_t i = 0; i < dim; ++i) out[static_cast<size_t>(i)] = m[i] + d[i];
      perToken[r] = sumsOf(hr, out.data(), dim);
      std::memcpy(hr, out.data(), static_cast<size_t>(dim) * sizeof(float));
    }
  });
}

int64_t accumulateStats(const TokenStats* perToken, int64_t rows, LayerStats& stats) {
  for (int64_t r = 0; r < rows; ++r) {
    if (perToken[r].nonFinite) return r;
    stats.sumCos += perToken[r].cos;
    stats.sumAngular += perToken[r].angular;
    stats.sumRelMag += perToken[r].relMag;
    if (perToken[r].undefinedCos) ++stats.nanCount;
  }
  stats.tokens += rows;
  return -1;
}

int64_t accumulateStats(const TokenStats* perToken, int64_t rows, LayerStats& stats, const int64_t* seqOffsets,
                        int64_t seqBegin, int64_t seqEnd) {
  const int64_t bad = accumulateStats(perToken, rows, stats);
  if (bad >= 0) return bad;
  LayerStats::PerSequence& ps = stats.perSequence;
  const int64_t rowBegin = seqOffsets[seqBegin];
  for (int64_t s = seqBegin; s < seqEnd; ++s) {
    const size_t i = static_cast<size_t>(s);
    for (int64_t r = seqOffsets[s]; r < seqOffsets[s + 1]; ++r) {
      const TokenStats& t = perToken[r - rowBegin];
      ps.sumCos[i] += t.cos;
      ps.sumAngular[i] += t.angular;
      ps.sumRelMag[i] += t.relMag;
      if (t.undefinedCos) ps.nanCount[i] += 1;
    }
    ps.tokens[i] += static_cast<double>(seqOffsets[s + 1] - seqOffsets[s]);
  }
  return -1;
}

}  // namespace shortgpt
