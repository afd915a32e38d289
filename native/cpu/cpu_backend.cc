#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

#include "core/finite.h"
#include "core/thread_pool.h"
#include "core/weights_io.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"
#include "cpu/ops.h"
#include "cpu/stats.h"

namespace shortgpt {

namespace {

// Sequences are processed in batches of whole sequences of about this many tokens: enough rows
// for the GEMM to reuse each packed weight panel, few enough to bound the scratch buffers.
constexpr int64_t kBatchTokens = 1024;
// lm_head is packed this many vocabulary rows at a time (fixed, so logitsSum's order is too).
constexpr int64_t kVocabChunk = 4096;
// Rows of logits computed at a time: [kLogitRows, kVocabChunk] f32 of scratch.
constexpr int64_t kLogitRows = 256;

struct Batch {
  int64_t seqBegin, seqEnd;  // sequences [seqBegin, seqEnd)
  int64_t rowBegin, rowEnd;  // their rows in the residual stream
};

// The first NaN/Inf met while packing, over all threads: the lowest (part, element), so the
// error names the same element whatever the thread count.
class FirstBadWeight {
 public:
  void note(size_t part, int64_t element, float value) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!found_ || part < part_ || (part == part_ && element < element_)) {
      found_ = true;
      part_ = part;
      element_ = element;
      value_ = value;
    }
  }
  // Called after the parallel work: throws ERR_NONFINITE_WEIGHT naming the tensor and position.
  void throwIfFound(const std::vector<const TensorRef*>& parts) const {
    if (found_) throwNonFiniteWeight(*parts[part_], element_, value_);
  }

 private:
  std::mutex mu_;
  bool found_ = false;
  size_t part_ = 0;
  int64_t element_ = 0;
  float value_ = 0;
};

// Packs several [n_i, k] tensors stacked along rows as one weight (q;k;v or gate;up) into `out`,
// so one GEMM computes all projections that read the same input. Every pool thread preads the
// rows of its own panels (converting 16-bit dtypes to f32 there), so the read is parallel and
// needs no layer-sized staging buffer; `out` keeps its storage from the previous layer. The
// converted rows are checked for NaN/Inf while they are still in cache (ERR_NONFINITE_WEIGHT).
// `out` is a PackedWeight (f32) or a PackedWeightBf16 (fast mode): both take rows in f32.
template <typename Packed>
void repackStacked(const std::vector<const TensorRef*>& parts, int64_t k, Packed& out, ThreadPool& pool) {
  struct Part {
    std::unique_ptr<TensorReader> reader;
    int64_t rowBegin, rows;
    DType dtype;
    ConvertToF32Fn convert;
  };
  std::vector<Part> ps;
  int64_t n = 0;
  for (const TensorRef* p : parts) {
    ps.push_back({std::make_unique<TensorReader>(*p), n, p->shape[0], p->dtype, converterToF32(p->dtype)});
    n += p->shape[0];
  }
  FirstBadWeight bad;
  out.repack(n, k, [&](int64_t row0, int64_t rows, float* dst) {
    thread_local std::vector<uint8_t> bytes;  // 16-bit rows before conversion
    for (size_t pi = 0; pi < ps.size(); ++pi) {
      const Part& p = ps[pi];
      const int64_t a = std::max(row0, p.rowBegin), b = std::min(row0 + rows, p.rowBegin + p.rows);
      if (a >= b) continue;
      float* d = dst + (a - row0) * k;
      const int64_t elem = static_cast<int64_t>(dtypeSize(p.dtype));
      const int64_t byteBegin = (a - p.rowBegin) * k * elem, byteCount = (b - a) * k * elem;
      if (p.dtype == DType::F32) {
        p.reader->read(byteBegin, byteCount, d);
      } else {
        if (bytes.size() < static_cast<size_t>(byteCount)) bytes.resize(static_cast<size_t>(byteCount));
        p.reader->read(byteBegin, byteCount, bytes.data());
        p.convert(bytes.data(), d, static_cast<size_t>((b - a) * k));
      }
      if (!allFinite(d, (b - a) * k)) {
        const int64_t i = firstNonFinite(d, (b - a) * k);
        bad.note(pi, (a - p.rowBegin) * k + i, d[i]);
      }
    }
  }, pool);
  bad.throwIfFound(parts);
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, int threads, CpuPrecision precision)
      : spec_(spec), seqs_(std::move(sequences)), bf16_(precision == CpuPrecision::Bf16), pool_(threads) {
    seqOffsets_.push_back(0);
    int64_t maxLen = 0;
    for (const auto& s : seqs_) {
      seqOffsets_.push_back(seqOffsets_.back() + static_cast<int64_t>(s.size()));
      maxLen = std::max<int64_t>(maxLen, static_cast<int64_t>(s.size()));
    }
    totalTokens_ = seqOffsets_.back();
    positions_.resize(static_cast<size_t>(totalTokens_));
    for (size_t s = 0; s < seqs_.size(); ++s) {
      for (int64_t p = 0; p < static_cast<int64_t>(seqs_[s].size()); ++p) positions_[static_cast<size_t>(seqOffsets_[s] + p)] = static_cast<int32_t>(p);
    }
    for (int64_t s = 0; s < static_cast<int64_t>(seqs_.size());) {
      Batch b{s, s, seqOffsets_[static_cast<size_t>(s)], seqOffsets_[static_cast<size_t>(s)]};
      while (b.seqEnd < static_cast<int64_t>(seqs_.size()) &&
             (b.seqEnd == b.seqBegin || seqOffsets_[static_cast<size_t>(b.seqEnd + 1)] - b.rowBegin <= kBatchTokens)) {
        ++b.seqEnd;
      }
      b.rowEnd = seqOffsets_[static_cast<size_t>(b.seqEnd)];
      maxBatchRows_ = std::max(maxBatchRows_, b.rowEnd - b.rowBegin);
      batches_.push_back(b);
      s = b.seqEnd;
    }
    rope_ = RopeTable::build(spec_, std::max<int64_t>(maxLen, 1));
    h_.assign(static_cast<size_t>(totalTokens_ * spec_.hiddenSize), 0.0f);
  }

  void embed(const TensorRef& table, const RunControl& ctl) override {
    const int64_t H = spec_.hiddenSize;
    const int64_t rowBytes = H * static_cast<int64_t>(dtypeSize(table.dtype));
    TensorReader reader(table);
    std::vector<uint8_t> row(static_cast<size_t>(rowBytes));
    for (size_t s = 0; s < seqs_.size(); ++s) {
      ctl.checkCancelled();
      for (size_t p = 0; p < seqs_[s].size(); ++p) {
        reader.read(seqs_[s][p] * rowBytes, rowBytes, row.data());
        float* dst = h_.data() + (seqOffsets_[s] + static_cast<int64_t>(p)) * H;
        convertToF32(row.data(), table.dtype, dst, static_cast<size_t>(H));
        // Only the rows of tokens present are read, so only those are checked.
        checkWeightFinite(table, dst, H, static_cast<int64_t>(seqs_[s][p]) * H);
      }
    }
  }

  LayerStats forwardLayer(const LayerRefs& w, const RunControl& ctl) override {
    const int64_t H = spec_.hiddenSize, I = spec_.intermediateSize;
    const int64_t qd = spec_.qDim(), kvd = spec_.kvDim(), qkvDim = qd + 2 * kvd;
    const float eps = static_cast<float>(spec_.rmsNormEps);

    // One layer's weights, packed (f32, or bf16 in fast mode) into the same storage every layer.
    const std::vector<float> inNorm = readTensorF32(w.at("input_layernorm"));
    const std::vector<float> postNorm = readTensorF32(w.at("post_attention_layernorm"));
    if (bf16_) {
      packLayer(w, qkvB_, oB_, guB_, downB_);
    } else {
      packLayer(w, qkvW_, oW_, guW_, downW_);
    }
    // The four projections' GEMMs, in the session's precision (0: q|k|v, 1: o, 2: gate|up, 3: down).
    auto project = [&](int which, const float* in, int64_t rows, float* out, bool accumulate) {
      if (bf16_) {
        const PackedWeightBf16* ws[] = {&qkvB_, &oB_, &guB_, &downB_};
        gemmBf16(in, rows, *ws[which], out, accumulate, pool_);
      } else {
        const PackedWeight* ws[] = {&qkvW_, &oW_, &guW_, &downW_};
        gemm(in, rows, *ws[which], out, accumulate, pool_);
      }
    };
    std::vector<float> qkvBias, oBias, qNorm, kNorm;
    if (spec_.outputBias) oBias = readTensorF32(w.at("o_bias"));
    if (spec_.attentionBias) {
      for (const char* role : {"q_bias", "k_bias", "v_bias"}) {
        std::vector<float> b = readTensorF32(w.at(role));
        qkvBias.insert(qkvBias.end(), b.begin(), b.end());
      }
    }
    if (spec_.qkNorm) {
      qNorm = readTensorF32(w.at("q_norm"));
      kNorm = readTensorF32(w.at("k_norm"));
    }

    // Scratch for one batch of sequences, allocated on first use and kept for later layers.
    if (tok_.empty()) allocateScratch();
    float* x = x_.data();
    float* qkv = qkv_.data();
    float* attn = attn_.data();
    float* mid = mid_.data();
    float* gateUp = gateUp_.data();
    float* act = act_.data();
    float* delta = delta_.data();
    TokenStats* tok = tok_.data();

    const AttentionShape shape{spec_.numHeads, spec_.numKvHeads, spec_.headDim, spec_.slidingWindow};
    LayerStats stats;
    for (const Batch& b : batches_) {
      ctl.checkCancelled();
      const int64_t rows = b.rowEnd - b.rowBegin;
      float* hb = h_.data() + b.rowBegin * H;
      const int32_t* pos = positions_.data() + b.rowBegin;

      rmsNorm(hb, H, x, H, rows, H, inNorm.data(), eps, pool_);
      project(0, x, rows, qkv, false);
      if (spec_.attentionBias) addBias(qkv, qkvDim, rows, qkvBias.data(), qkvDim, pool_);
      if (spec_.qkNorm) {  // Qwen3: per-head RMSNorm before RoPE
        headRmsNorm(qkv, qkvDim, rows, spec_.numHeads, spec_.headDim, qNorm.data(), eps, pool_);
        headRmsNorm(qkv + qd, qkvDim, rows, spec_.numKvHeads, spec_.headDim, kNorm.data(), eps, pool_);
      }
      applyRope(qkv, qkvDim, rows, spec_.numHeads, spec_.headDim, pos, rope_, pool_);
      applyRope(qkv + qd, qkvDim, rows, spec_.numKvHeads, spec_.headDim, pos, rope_, pool_);

      std::vector<int64_t> offsets;
      for (int64_t s = b.seqBegin; s <= b.seqEnd; ++s) offsets.push_back(seqOffsets_[static_cast<size_t>(s)] - b.rowBegin);
      causalAttention(qkv, qkvDim, qkv + qd, qkv + qd + kvd, qkvDim, attn, qd, offsets, shape, pool_, kt_);

      std::memcpy(mid, hb, static_cast<size_t>(rows * H) * sizeof(float));
      project(1, attn, rows, mid, true);  // first residual add
      if (spec_.outputBias) addBias(mid, H, rows, oBias.data(), H, pool_);
      rmsNorm(mid, H, x, H, rows, H, postNorm.data(), eps, pool_);
      project(2, x, rows, gateUp, false);
      swiglu(gateUp, act, rows, I, pool_);
      project(3, act, rows, delta, false);
      residualWithStats(hb, mid, delta, rows, H, tok, pool_);  // second add
      if (const int64_t bad = accumulateStats(tok, rows, stats); bad >= 0) throwNonFiniteRow(b.rowBegin + bad);
      if (ctl.progress) ctl.progress(b.seqEnd, static_cast<int64_t>(seqs_.size()));
    }
    return stats;
  }

  void copyResidual(float* dst) const override { std::memcpy(dst, h_.data(), h_.size() * sizeof(float)); }
  void setResidual(const float* src) override { std::memcpy(h_.data(), src, h_.size() * sizeof(float)); }

  void copyLastTokenStates(float* dst) const override {
    const int64_t H = spec_.hiddenSize;
    for (size_t s = 0; s < seqs_.size(); ++s) {
      std::memcpy(dst + static_cast<int64_t>(s) * H, h_.data() + (seqOffsets_[s + 1] - 1) * H, static_cast<size_t>(H) * sizeof(float));
    }
  }

  NllStats nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) override {
    const int64_t H = spec_.hiddenSize, V = spec_.vocabSize, T = totalTokens_;
    const float eps = static_cast<float>(spec_.rmsNormEps);
    // The last layer's packed weights are not needed here: give their memory back first.
    qkvW_ = PackedWeight();
    oW_ = PackedWeight();
    guW_ = PackedWeight();
    downW_ = PackedWeight();
    qkvB_ = PackedWeightBf16();
    oB_ = PackedWeightBf16();
    guB_ = PackedWeightBf16();
    downB_ = PackedWeightBf16();
    const std::vector<float> normW = readTensorF32(finalNorm);

    // Per token: the next token it predicts (-1 for a sequence's last token), and the running
    // state of a log-sum-exp over vocabulary chunks (max in f32, sum of exp in double).
    std::vector<int32_t> target(static_cast<size_t>(T), -1);
    for (size_t s = 0; s < seqs_.size(); ++s) {
      for (size_t p = 0; p + 1 < seqs_[s].size(); ++p) target[static_cast<size_t>(seqOffsets_[s]) + p] = seqs_[s][p + 1];
    }
    std::vector<float> runMax(static_cast<size_t>(T), -std::numeric_limits<float>::infinity());
    std::vector<double> sumExp(static_cast<size_t>(T), 0.0), rowLogitSum(static_cast<size_t>(T), 0.0);
    std::vector<float> targetLogit(static_cast<size_t>(T), 0.0f);

    const int64_t rowBytes = H * static_cast<int64_t>(dtypeSize(lmHead.dtype));
    TensorReader reader(lmHead);
    FirstBadWeight badHead;
    // The first row whose logits hold NaN/Inf (finite weights can still overflow float32).
    std::mutex badLogitMu;
    int64_t badLogitRow = -1, badLogitIndex = -1;
    float badLogitValue = 0;
    std::vector<float> x(static_cast<size_t>(kLogitRows * H));
    std::vector<float> logits(static_cast<size_t>(kLogitRows * kVocabChunk));
    for (int64_t v0 = 0; v0 < V; v0 += kVocabChunk) {
      ctl.checkCancelled();
      const int64_t n = std::min(kVocabChunk, V - v0);
      if (spec_.normalizedLmHead) {
        if (raw_.size() < static_cast<size_t>(n * rowBytes)) raw_.resize(static_cast<size_t>(n * rowBytes));
        reader.read(v0 * rowBytes, n * rowBytes, raw_.data());
        headW_ = packNormalizedRows(raw_.data(), lmHead.dtype, n, H, lmHead, v0 * H);
      } else {
        // Every thread reads and converts the rows of its own panels (as the layer weights).
        const ConvertToF32Fn convert = converterToF32(lmHead.dtype);
        headW_.repack(n, H, [&](int64_t row0, int64_t rows, float* dst) {
          thread_local std::vector<uint8_t> bytes;
          if (lmHead.dtype == DType::F32) {
            reader.read((v0 + row0) * rowBytes, rows * rowBytes, dst);
          } else {
            if (bytes.size() < static_cast<size_t>(rows * rowBytes)) bytes.resize(static_cast<size_t>(rows * rowBytes));
            reader.read((v0 + row0) * rowBytes, rows * rowBytes, bytes.data());
            convert(bytes.data(), dst, static_cast<size_t>(rows * H));
          }
          if (!allFinite(dst, rows * H)) {
            const int64_t i = firstNonFinite(dst, rows * H);
            badHead.note(0, (v0 + row0) * H + i, dst[i]);
          }
        }, pool_);
        badHead.throwIfFound({&lmHead});
      }
      const PackedWeight& w = headW_;
      for (int64_t r0 = 0; r0 < T; r0 += kLogitRows) {
        const int64_t rows = std::min(kLogitRows, T - r0);
        // The final norm is recomputed per vocabulary chunk: cheap next to the GEMM, and it
        // saves a second [T, H] buffer.
        rmsNorm(h_.data() + r0 * H, H, x.data(), H, rows, H, normW.data(), eps, pool_);
        gemm(x.data(), rows, w, logits.data(), false, pool_);
        pool_.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
          for (int64_t i = begin; i < end; ++i) {
            const float* l = logits.data() + i * n;
            const size_t r = static_cast<size_t>(r0 + i);
            float chunkMax = -std::numeric_limits<float>::infinity();
            double lsum = 0;
            for (int64_t j = 0; j < n; ++j) {
              chunkMax = std::max(chunkMax, l[j]);
              lsum += l[j];
            }
            // A sum of f32 values in double overflows only if one of them is not finite.
            if (!std::isfinite(lsum)) {
              const int64_t j = firstNonFinite(l, n);
              std::lock_guard<std::mutex> lock(badLogitMu);
              if (badLogitRow < 0 || static_cast<int64_t>(r) < badLogitRow) {
                badLogitRow = static_cast<int64_t>(r);
                badLogitIndex = v0 + j;
                badLogitValue = l[j];
              }
            }
            const float newMax = std::max(runMax[r], chunkMax);
            double s = sumExp[r] * std::exp(static_cast<double>(runMax[r]) - newMax);
            for (int64_t j = 0; j < n; ++j) s += std::exp(l[j] - newMax);
            sumExp[r] = s;
            runMax[r] = newMax;
            rowLogitSum[r] += lsum;
            if (target[r] >= v0 && target[r] < v0 + n) targetLogit[r] = l[target[r] - v0];
          }
        });
      }
      if (badLogitRow >= 0) {
        const TokenPlace at = placeOfRow(seqOffsets_, badLogitRow);
        throw EngineError("ERR_NONFINITE_LOGITS", "the logits (final norm + lm_head '" + lmHead.name + "') became non-finite (" +
                                                      nonFiniteName(badLogitValue) + ") at sequence " + std::to_string(at.sequence) +
                                                      ", position " + std::to_string(at.position) + ", vocabulary index " +
                                                      std::to_string(badLogitIndex) + " (the first one in vocabulary rows " +
                                                      std::to_string(v0) + ".." + std::to_string(v0 + n - 1) +
                                                      "): perplexity would be NaN");
      }
      if (ctl.progress) ctl.progress(v0 + n, V);
    }
    headW_ = PackedWeight();

    NllStats out;
    for (int64_t r = 0; r < T; ++r) {
      const size_t i = static_cast<size_t>(r);
      if (target[i] >= 0) {
        out.sumNll += std::log(sumExp[i]) + runMax[i] - targetLogit[i];
        ++out.predictions;
      }
      out.logitsSum += rowLogitSum[i];
    }
    return out;
  }

 private:
  template <typename Packed>
  void packLayer(const LayerRefs& w, Packed& qkv, Packed& o, Packed& gu, Packed& down) {
    const int64_t H = spec_.hiddenSize, I = spec_.intermediateSize, qd = spec_.qDim();
    if (spec_.fusedQkv) {
      repackStacked({&w.at("W_pack")}, H, qkv, pool_);
    } else {
      repackStacked({&w.at("q_proj"), &w.at("k_proj"), &w.at("v_proj")}, H, qkv, pool_);
    }
    repackStacked({&w.at("o_proj")}, qd, o, pool_);
    repackStacked({&w.at("gate_proj"), &w.at("up_proj")}, H, gu, pool_);
    repackStacked({&w.at("down_proj")}, I, down, pool_);
  }

  // Baichuan 2's NormHead: row / max(||row||, 1e-12), as torch.nn.functional.normalize. The
  // rows are converted to f32 and normalised there (norm summed in double, then rounded to f32
  // and divided, like torch's f32 path); for 16-bit checkpoints the result stays f32 rather than
  // being rounded back to bf16/f16 as torch would, which only removes a rounding step.
  PackedWeight packNormalizedRows(const uint8_t* src, DType dtype, int64_t n, int64_t k, const TensorRef& ref, int64_t firstElement) {
    headF32_.resize(static_cast<size_t>(n * k));
    convertToF32(src, dtype, headF32_.data(), headF32_.size());
    checkWeightFinite(ref, headF32_.data(), n * k, firstElement);
    pool_.parallelFor(n, [&](int64_t begin, int64_t end, int) {
      for (int64_t r = begin; r < end; ++r) {
        float* row = headF32_.data() + r * k;
        double ss = 0;
        for (int64_t j = 0; j < k; ++j) ss += static_cast<double>(row[j]) * row[j];
        const float norm = std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
        for (int64_t j = 0; j < k; ++j) row[j] /= norm;
      }
    });
    return PackedWeight::pack(headF32_.data(), DType::F32, n, k, pool_);
  }

  // The residual row `row` holds NaN/Inf after this layer: find the first bad hidden index.
  [[noreturn]] void throwNonFiniteRow(int64_t row) const {
    const float* hr = h_.data() + row * spec_.hiddenSize;
    const int64_t i = std::max<int64_t>(firstNonFinite(hr, spec_.hiddenSize), 0);
    throwNonFiniteActivation("the layer's output (the residual stream)", placeOfRow(seqOffsets_, row), i, hr[i]);
  }

  void allocateScratch() {
    const int64_t R = maxBatchRows_, H = spec_.hiddenSize, I = spec_.intermediateSize;
    const int64_t qd = spec_.qDim(), kvd = spec_.kvDim();
    x_.resize(static_cast<size_t>(R * H));
    qkv_.resize(static_cast<size_t>(R * (qd + 2 * kvd)));
    attn_.resize(static_cast<size_t>(R * qd));
    mid_.resize(static_cast<size_t>(R * H));
    gateUp_.resize(static_cast<size_t>(R * 2 * I));
    act_.resize(static_cast<size_t>(R * I));
    delta_.resize(static_cast<size_t>(R * H));
    tok_.resize(static_cast<size_t>(R));
  }

  ModelSpec spec_;
  std::vector<std::vector<int32_t>> seqs_;
  bool bf16_;  // fast mode: the layers' GEMMs in bf16 (lm_head stays f32)
  std::vector<int64_t> seqOffsets_;  // [sequences + 1] first row of each sequence
  int64_t totalTokens_ = 0;
  std::vector<int32_t> positions_;  // [totalTokens] position of each row in its sequence
  std::vector<Batch> batches_;
  int64_t maxBatchRows_ = 0;
  ThreadPool pool_;
  RopeTable rope_;
  // Large buffers live in packed-weight storage: 2 MiB aligned and advised as huge pages, and
  // not zero-filled, which on the VMs we measured saved thousands of 4 KiB page faults (about
  // 20 us each) per session.
  using Buffer = std::vector<float, CacheAlignedAllocator<float>>;
  Buffer h_;  // the residual stream, [totalTokens, hidden] f32
  // Per-batch scratch, R = maxBatchRows_ rows: normed input [R, H]; q | k | v [R, qd + 2 kvd];
  // attention output [R, qd]; h + attention [R, H]; gate | up [R, 2I]; silu(gate) * up [R, I];
  // MLP output [R, H]; per-token statistics [R].
  Buffer x_, qkv_, attn_, mid_, gateUp_, act_, delta_;
  std::vector<TokenStats> tok_;
  std::vector<float> kt_;  // attention's transposed keys, [kvHeads, headDim, padded batch rows]
  // The current layer's packed weights (storage reused layer after layer: no fresh page faults).
  PackedWeight qkvW_, oW_, guW_, downW_;
  PackedWeightBf16 qkvB_, oB_, guB_, downB_;  // the same in fast mode
  PackedWeight headW_;  // the current lm_head vocabulary chunk
  std::vector<uint8_t> raw_;  // NormHead lm_head bytes staged for normalising
  std::vector<float> headF32_;  // a NormHead lm_head chunk, normalised before packing
};

}  // namespace

std::unique_ptr<Backend> createCpuBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, int threads,
                                          CpuPrecision precision) {
  return std::make_unique<CpuBackend>(spec, std::move(sequences), threads, precision);
}

}  // namespace shortgpt
