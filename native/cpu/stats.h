// The Block Influence statistics, fused into the pass that writes a layer's output. For each
// token: out = mid + delta (the second residual add) is written over the layer's input `h`,
// and dot(in, out), |in|, |out|, |out - in| are computed in double from the f32 values. The
// per-token results are kept per token and summed in token order afterwards, so the sums are
// bit-identical for any thread count (ShortGPT, arXiv 2403.03853, eq. 1).
#pragma once
#include <cstdint>

#include "core/backend.h"
#include "core/thread_pool.h"

namespace shortgpt {

struct TokenStats {
  double cos;      // 0.5 when undefined (a zero-norm input or output), as the authors' code
  double angular;  // arccos(cos) / pi of that cosine
  double relMag;   // ||out - in|| / ||out||
  bool undefinedCos;  // the input or the output is exactly zero (never set for NaN/Inf)
  // The input or output holds NaN or Inf (its squared norm is not finite: a finite f32 squared
  // and summed in double cannot overflow). Its cos/angular/relMag are meaningless; callers stop.
  bool nonFinite;
};

// h[r] (the layer input) is replaced by mid[r] + delta[r]; perToken[r] receives its statistics.
void residualWithStats(float* h, const float* mid, const float* delta, int64_t rows, int64_t dim,
                       TokenStats* perToken, ThreadPool& pool);

// Adds perToken[0..rows) to `stats` in token order. Returns the first row whose statistics are
// non-finite (the caller reports it), or -1.
int64_t accumulateStats(const TokenStats* perToken, int64_t rows, LayerStats& stats);

// The same for rows [rowBegin, rowBegin + rows) of the residual stream, also adding each token to
// its sequence's entry of stats.perSequence (sized by the caller; seqOffsets[s] is sequence s's
// first row, seqOffsets[seqBegin] == rowBegin). The pooled sums are added exactly as above, so
// they stay bit-identical; each sequence's sums are in its own token order.
int64_t accumulateStats(const TokenStats* perToken, int64_t rows, LayerStats& stats, const int64_t* seqOffsets,
                        int64_t seqBegin, int64_t seqEnd);

// The statistics of one token from its input and output vectors (also used by tests and by
// callers comparing non-adjacent layers).
TokenStats tokenStats(const float* in, const float* out, int64_t dim);

}  // namespace shortgpt
