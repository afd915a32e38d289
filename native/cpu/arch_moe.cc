#include "cpu/arch_moe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <string>

#include "core/dtype.h"
#include "core/finite.h"
#include "core/weights_io.h"
#include "cpu/ops.h"
#include "cpu/stacked_readers.h"

namespace shortgpt {

namespace {

// Packs tensors stacked row-wise ([n_i, k] each) as one weight, each pool thread reading and
// converting the rows of its own panels; the first NaN/Inf (lowest tensor, then element) throws.
template <typename Packed>
void packStacked(const std::vector<const TensorRef*>& parts, int64_t k, Packed& out, ThreadPool& pool) {
  StackedReaders stack(parts);
  std::vector<std::unique_ptr<TensorReader>>& readers = stack.readers;
  const std::vector<int64_t>& begins = stack.begins;
  const int64_t n = stack.n;
  std::mutex mu;
  size_t badPart = parts.size();
  int64_t badElement = 0;
  float badValue = 0;
  out.repack(n, k, [&](int64_t row0, int64_t rows, float* dst) {
    thread_local std::vector<uint8_t> bytes;
    for (size_t pi = 0; pi < parts.size(); ++pi) {
      const int64_t a = std::max(row0, begins[pi]), b = std::min(row0 + rows, begins[pi] + parts[pi]->shape[0]);
      if (a >= b) continue;
      float* d = dst + (a - row0) * k;
      const DType dt = parts[pi]->dtype;
      const int64_t elem = static_cast<int64_t>(dtypeSize(dt));
      const int64_t byteBegin = (a - begins[pi]) * k * elem, byteCount = (b - a) * k * elem;
      if (dt == DType::F32) {
        readers[pi]->read(byteBegin, byteCount, d);
      } else {
        if (bytes.size() < static_cast<size_t>(byteCount)) bytes.resize(static_cast<size_t>(byteCount));
        readers[pi]->read(byteBegin, byteCount, bytes.data());
        converterToF32(dt)(bytes.data(), d, static_cast<size_t>((b - a) * k));
      }
      if (!allFinite(d, (b - a) * k)) {
        const int64_t i = firstNonFinite(d, (b - a) * k);
        std::lock_guard<std::mutex> lock(mu);
        const int64_t element = (a - begins[pi]) * k + i;
        if (pi < badPart || (pi == badPart && element < badElement)) {
          badPart = pi;
          badElement = element;
          badValue = d[i];
        }
      }
    }
  }, pool);
  if (badPart < parts.size()) throwNonFiniteWeight(*parts[badPart], badElement, badValue);
}

}  // namespace

void MoeMlp::load(const ModelSpec& spec, const LayerRefs& w, bool bf16, ThreadPool& pool) {
  experts_ = spec.numExperts;
  topK_ = spec.numExpertsPerTok;
  hidden_ = spec.hiddenSize;
  inter_ = spec.moeIntermediateSize;
  normTopk_ = spec.normTopkProb;
  bf16_ = bf16;
  packStacked({&w.at("moe_router")}, hidden_, router_, pool);
  const size_t E = static_cast<size_t>(experts_);
  if (bf16) {
    gateUp_.clear();
    down_.clear();
    gateUpB_.resize(E);
    downB_.resize(E);
  } else {
    gateUpB_.clear();
    downB_.clear();
    gateUp_.resize(E);
    down_.resize(E);
  }
  for (size_t e = 0; e < E; ++e) {
    const std::string s = std::to_string(e);
    const std::vector<const TensorRef*> gu = {&w.at("expert_gate." + s), &w.at("expert_up." + s)}, d = {&w.at("expert_down." + s)};
    if (bf16) {
      packStacked(gu, hidden_, gateUpB_[e], pool);
      packStacked(d, inter_, downB_[e], pool);
    } else {
      packStacked(gu, hidden_, gateUp_[e], pool);
      packStacked(d, inter_, down_[e], pool);
    }
  }
}

void MoeMlp::release() {
  router_ = PackedWeight();
  gateUp_.clear();
  down_.clear();
  gateUpB_.clear();
  downB_.clear();
}

void MoeMlp::forward(const float* x, int64_t rows, float* out, ThreadPool& pool) {
  const int64_t E = experts_, K = topK_, H = hidden_, I = inter_;
  logits_.resize(static_cast<size_t>(rows * E));
  gemm(x, rows, router_, logits_.data(), false, pool);
  // Routing: softmax in f32 (as softmax(..., dtype=float32)), top-k by probability, renormalised.
  std::vector<int32_t> chosen(static_cast<size_t>(rows * K));
  std::vector<float> weight(static_cast<size_t>(rows * K));
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> p(static_cast<size_t>(E));
    for (int64_t r = begin; r < end; ++r) {
      const float* l = logits_.data() + r * E;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t e = 0; e < E; ++e) mx = std::max(mx, l[e]);
      float sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += (p[static_cast<size_t>(e)] = std::exp(l[e] - mx));
      for (int64_t e = 0; e < E; ++e) p[static_cast<size_t>(e)] /= sum;
      // torch.topk: descending; among equal values the lower index first (a stable choice).
      float total = 0;
      for (int64_t k = 0; k < K; ++k) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; ++e) {
          bool taken = false;
          for (int64_t j = 0; j < k; ++j) taken = taken || chosen[static_cast<size_t>(r * K + j)] == e;
          if (!taken && (best < 0 || p[static_cast<size_t>(e)] > p[static_cast<size_t>(best)])) best = e;
        }
        chosen[static_cast<size_t>(r * K + k)] = static_cast<int32_t>(best);
        weight[static_cast<size_t>(r * K + k)] = p[static_cast<size_t>(best)];
        total += p[static_cast<size_t>(best)];
      }
      if (normTopk_) {
        for (int64_t k = 0; k < K; ++k) weight[static_cast<size_t>(r * K + k)] /= total;
      }
    }
  });
  std::fill(out, out + rows * H, 0.0f);
  // Experts in ascending order, each over the tokens routed to it (gathered into one GEMM).
  std::vector<int64_t> tokens;
  std::vector<float> tokenWeight;
  for (int64_t e = 0; e < E; ++e) {
    tokens.clear();
    tokenWeight.clear();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < K; ++k) {
        if (chosen[static_cast<size_t>(r * K + k)] == e) {
          tokens.push_back(r);
          tokenWeight.push_back(weight[static_cast<size_t>(r * K + k)]);
        }
      }
    }
    const int64_t m = static_cast<int64_t>(tokens.size());
    if (m == 0) continue;
    xe_.resize(static_cast<size_t>(m * H));
    gu_.resize(static_cast<size_t>(m * 2 * I));
    act_.resize(static_cast<size_t>(m * I));
    ye_.resize(static_cast<size_t>(m * H));
    for (int64_t i = 0; i < m; ++i) std::copy(x + tokens[static_cast<size_t>(i)] * H, x + (tokens[static_cast<size_t>(i)] + 1) * H, xe_.data() + i * H);
    if (bf16_) {
      gemmBf16(xe_.data(), m, gateUpB_[static_cast<size_t>(e)], gu_.data(), false, pool);
      swiglu(gu_.data(), act_.data(), m, I, pool);
      gemmBf16(act_.data(), m, downB_[static_cast<size_t>(e)], ye_.data(), false, pool);
    } else {
      gemm(xe_.data(), m, gateUp_[static_cast<size_t>(e)], gu_.data(), false, pool);
      swiglu(gu_.data(), act_.data(), m, I, pool);
      gemm(act_.data(), m, down_[static_cast<size_t>(e)], ye_.data(), false, pool);
    }
    // out[token] += output * weight (each token appears at most once per expert).
    pool.parallelFor(m, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) {
        float* o = out + tokens[static_cast<size_t>(i)] * H;
        const float* y = ye_.data() + i * H;
        const float wt = tokenWeight[static_cast<size_t>(i)];
        for (int64_t j = 0; j < H; ++j) o[j] += y[j] * wt;
      }
    });
  }
}

}  // namespace shortgpt
