#include "cpu/stats.h"

#include <algorithm>
#include <cmath>

namespace shortgpt {

namespace {

TokenStats fromSums(double dot, double inSq, double outSq, double diffSq) {
  const double pi = 3.14159265358979323846;
  TokenStats t;
  const double denom = std::sqrt(inSq) * std::sqrt(outSq);
  t.undefinedCos = !(denom > 0) || !std::isfinite(dot / denom);
  // The authors' scoring replaces NaN cosines with 0.5 before averaging.
  t.cos = t.undefinedCos ? 0.5 : std::clamp(dot / denom, -1.0, 1.0);
  t.angular = std::acos(t.cos) / pi;
  // An all-zero output makes the ratio undefined: count no change as 0, any change as 1.
  t.relMag = outSq > 0 ? std::sqrt(diffSq) / std::sqrt(outSq) : (diffSq > 0 ? 1.0 : 0.0);
  return t;
}

}  // namespace

TokenStats tokenStats(const float* in, const float* out, int64_t dim) {
  double dot = 0, inSq = 0, outSq = 0, diffSq = 0;
  for (int64_t i = 0; i < dim; ++i) {
    const double a = in[i], b = out[i], d = b - a;
    dot += a * b;
    inSq += a * a;
    outSq += b * b;
    diffSq += d * d;
  }
  return fromSums(dot, inSq, outSq, diffSq);
}

void residualWithStats(float* h, const float* mid, const float* delta, int64_t rows, int64_t dim,
                       TokenStats* perToken, ThreadPool& pool) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      float* hr = h + r * dim;
      const float* m = mid + r * dim;
      const float* d = delta + r * dim;
      double dot = 0, inSq = 0, outSq = 0, diffSq = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const float o = m[i] + d[i];
        const double a = hr[i], b = o, df = b - a;
        dot += a * b;
        inSq += a * a;
        outSq += b * b;
        diffSq += df * df;
        hr[i] = o;
      }
      perToken[r] = fromSums(dot, inSq, outSq, diffSq);
    }
  });
}

void accumulateStats(const TokenStats* perToken, int64_t rows, LayerStats& stats) {
  for (int64_t r = 0; r < rows; ++r) {
    stats.sumCos += perToken[r].cos;
    stats.sumAngular += perToken[r].angular;
    stats.sumRelMag += perToken[r].relMag;
    if (perToken[r].undefinedCos) ++stats.nanCount;
  }
  stats.tokens += rows;
}

}  // namespace shortgpt
