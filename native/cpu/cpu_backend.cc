#include "cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#if defined(__linux__)
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#endif

#include "core/finite.h"
#include "core/thread_pool.h"
#include "core/weights_io.h"
#include "cpu/arch_moe.h"
#include "cpu/arch_ops.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gram.h"
#include "cpu/layer_parts.h"
#include "cpu/ops.h"
#include "cpu/stacked_readers.h"
#include "cpu/stats.h"
#include "cpu/streamed_layer.h"

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
// `out` is a PackedWeight (f32) or a PackedWeightBf16 (fast mode): both take rows in f32, and
// a PackedWeightBf16 of BF16 tensors takes their bf16 rows as they are (repackStacked below).
// `stop` (the prefetcher's, else null) abandons the work between panels (PrefetchStopped).
struct PrefetchStopped {};

// Fast mode on a BF16 checkpoint: the rows go from the file into the bf16 panel layout with no
// f32 round trip (bf16 -> f32 -> bf16 is exact, so the packed bits are those of the f32 path).
// NaN/Inf are found on the bf16 bits and reported with the same tensor, element and value.
void repackStackedBf16Rows(const std::vector<const TensorRef*>& parts, int64_t k, PackedWeightBf16& out, ThreadPool& pool,
                           const std::atomic<bool>* stop) {
  StackedReaders stack(parts);
  std::vector<std::unique_ptr<TensorReader>>& readers = stack.readers;
  const std::vector<int64_t>& begins = stack.begins;
  const int64_t n = stack.n;
  FirstBadWeight bad;
  out.repackBf16(n, k, [&](int64_t row0, int64_t rows, uint16_t* dst, int64_t stride) {
    if (stop && stop->load(std::memory_order_relaxed)) throw PrefetchStopped{};
    for (size_t pi = 0; pi < parts.size(); ++pi) {
      const int64_t a = std::max(row0, begins[pi]), b = std::min(row0 + rows, begins[pi] + parts[pi]->shape[0]);
      if (a >= b) continue;
      if (stride == k) {
        readers[pi]->read((a - begins[pi]) * k * 2, (b - a) * k * 2, dst + (a - row0) * stride);
      } else {
        for (int64_t r = a; r < b; ++r) readers[pi]->read((r - begins[pi]) * k * 2, k * 2, dst + (r - row0) * stride);
      }
      for (int64_t r = a; r < b; ++r) {
        const uint16_t* row = dst + (r - row0) * stride;
        if (const int64_t i = firstNonFiniteBf16(row, k); i >= 0) {
          const uint32_t bits = static_cast<uint32_t>(row[i]) << 16;
          float value;
          std::memcpy(&value, &bits, sizeof value);
          bad.note(pi, (r - begins[pi]) * k + i, value);
          break;  // later rows of this part hold later elements
        }
      }
    }
  }, pool);
  bad.throwIfFound(parts);
}

template <typename Packed>
void repackStacked(const std::vector<const TensorRef*>& parts, int64_t k, Packed& out, ThreadPool& pool,
                   const std::atomic<bool>* stop = nullptr) {
  if constexpr (std::is_same_v<Packed, PackedWeightBf16>) {
    // SHORTGPT_BF16_PACK_VIA_F32=1 (read once per process) keeps the f32 round trip, only to
    // measure what the direct path saves (scripts/bench-profile.sh, A/B runs).
    static const bool viaF32 = [] {
      const char* v = std::getenv("SHORTGPT_BF16_PACK_VIA_F32");
      return v && *v && std::strcmp(v, "0") != 0;
    }();
    if (!viaF32 && std::all_of(parts.begin(), parts.end(), [](const TensorRef* p) { return p->dtype == DType::BF16; })) {
      repackStackedBf16Rows(parts, k, out, pool, stop);
      return;
    }
  }
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
    if (stop && stop->load(std::memory_order_relaxed)) throw PrefetchStopped{};
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

// The running log-softmax of one row over vocabulary chunks: max in f32, sum of exp in double
// (rescaled when the max grows), the target's logit, the argmax (the lowest id among equal
// maxima) and the sum of every logit (nll's checksum).
struct RowSoftmax {
  float max = -std::numeric_limits<float>::infinity();
  double sumExp = 0;
  double logitSum = 0;
  float targetLogit = 0;
  int32_t argmax = -1;
  // -log p(target), one expression for nll's sum and the per-token logprobs alike.
  double nllTerm() const { return std::log(sumExp) + max - targetLogit; }
  double logSumExp() const { return std::log(sumExp) + static_cast<double>(max); }
};

// Folds logits l[0, n) (vocabulary ids v0..) into s. With `other` (the same row's logits from a
// second model) it also folds diff = sum_j exp(l_j - max) (l_j - other_j), rescaled with the same
// factor as sumExp and weighted by the same f32 exp values: KL's numerator. Returns the index of
// the first non-finite logit (the state is then left as it was), or -1.
inline int64_t foldChunk(RowSoftmax& s, const float* l, int64_t n, int64_t v0, int32_t target, const float* other = nullptr,
                         double* diff = nullptr) {
  float chunkMax = -std::numeric_limits<float>::infinity();
  int64_t chunkArg = 0;
  double lsum = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (l[j] > chunkMax) {
      chunkMax = l[j];
      chunkArg = j;
    }
    lsum += l[j];
  }
  // A sum of f32 values in double overflows only if one of them is not finite.
  if (!std::isfinite(lsum)) return std::max<int64_t>(firstNonFinite(l, n), 0);
  const float newMax = std::max(s.max, chunkMax);
  const double scale = std::exp(static_cast<double>(s.max) - newMax);
  double acc = s.sumExp * scale;
  if (other) {
    double d = *diff * scale;
    for (int64_t j = 0; j < n; ++j) {
      const float e = std::exp(l[j] - newMax);
      acc += e;
      d += e * (static_cast<double>(l[j]) - other[j]);
    }
    *diff = d;
  } else {
    for (int64_t j = 0; j < n; ++j) acc += std::exp(l[j] - newMax);
  }
  if (chunkMax > s.max) s.argmax = static_cast<int32_t>(v0 + chunkArg);
  s.sumExp = acc;
  s.max = newMax;
  s.logitSum += lsum;
  if (target >= v0 && target < v0 + n) s.targetLogit = l[target - v0];
  return -1;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, int threads, CpuPrecision precision)
      : spec_(spec), seqs_(std::move(sequences)), bf16_(precision == CpuPrecision::Bf16), pool_(threads), streamed_(bf16_) {
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
    archRope_ = buildArchRope(spec_, std::max<int64_t>(maxLen, 1));  // Phi-3: partial rotary, longrope
    if (spec_.localRopeTheta > 0) {  // Gemma 3's sliding layers: their own base, no scaling
      ModelSpec local = spec_;
      local.ropeTheta = spec_.localRopeTheta;
      local.ropeScaling = RopeScalingSpec();
      localRope_ = RopeTable::build(local, std::max<int64_t>(maxLen, 1));
    }
    h_.assign(static_cast<size_t>(totalTokens_ * spec_.hiddenSize), 0.0f);
    // The prefetch thread by default only where the pool leaves a hardware thread free: with a
    // thread on every core it could only use idle moments, and on 2 cores that measured 2-8%
    // slower than packing on the critical path (the pack's memory traffic beside the GEMMs, a
    // part abandoned at the join), so there only the kernel readahead is asked for.
    // SHORTGPT_PREFETCH=1 / =0 (read when the session is created) forces it on / off.
    prefetchIdle_ = static_cast<unsigned>(pool_.threads()) >= std::max(1u, std::thread::hardware_concurrency());
    prefetchEnabled_ = !prefetchIdle_;
    // A layer's weights: read where they lie (streamed_layer.h) or packed per layer. Streaming
    // saves the packing pass and its memory when a layer's weights meet one batch of rows; with
    // several batches each GEMM call would stage them again, and packing once wins (measured,
    // fast mode on Llama-3.2-1B's shape: 512 tokens, streamed +13-25%; 2 batches of 1024 level;
    // 4 batches, packed ~5% ahead). SHORTGPT_WEIGHT_STAGE=packed|streamed (read per session)
    // forces either, to compare.
    // SHORTGPT_BF16_FUSE_SWIGLU=0 (read per session) stores gate|up and runs swiglu() after, to
    // test that the fused store gives the same bits.
    const char* fuse = std::getenv("SHORTGPT_BF16_FUSE_SWIGLU");
    fuseSwiglu_ = !(fuse && std::strcmp(fuse, "0") == 0);
    const char* stage = std::getenv("SHORTGPT_WEIGHT_STAGE");
    stage_ = stage && std::strcmp(stage, "packed") == 0 ? Stage::Packed
             : stage && std::strcmp(stage, "streamed") == 0 ? Stage::Streamed : Stage::Auto;
    if (const char* v = std::getenv("SHORTGPT_PREFETCH"); v && *v) prefetchEnabled_ = std::strcmp(v, "0") != 0;
    if (const char* d = std::getenv("SHORTGPT_PREFETCH_DELAY_MS"); d && *d) prefetchDelayMs_ = std::max<int64_t>(0, std::atoll(d));
  }

  ~CpuBackend() override { dropPrefetch(); }

  // Remembers `next` for loadLayerWeights (which starts its prefetch); a failed layer (an error,
  // cancellation) stops and joins the prefetcher before the error leaves, so nothing runs on
  // behind a call that has returned.
  LayerStats forwardLayerWithNext(const LayerRefs& w, const LayerRefs* next, const RunControl& ctl) override {
    next_ = next;
    try {
      LayerStats s = forwardLayer(w, ctl);
      next_ = nullptr;
      return s;
    } catch (...) {
      next_ = nullptr;
      dropPrefetch();
      throw;
    }
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
        if (spec_.embeddingMultiplier != 1.0) {  // Granite's embedding_multiplier; Gemma's sqrt(hidden) in the table's dtype
          const float m = static_cast<float>(spec_.roundEmbeddingScale ? roundToDtype(spec_.embeddingMultiplier, table.dtype)
                                                                       : spec_.embeddingMultiplier);
          for (int64_t i = 0; i < H; ++i) dst[i] *= m;
        }
      }
    }
  }

  LayerStats forwardLayer(const LayerRefs& w, const RunControl& ctl) override {
    const int64_t H = spec_.hiddenSize, I = spec_.intermediateSize;
    const int64_t qd = spec_.qDim(), kvd = spec_.kvDim(), qkvDim = qd + 2 * kvd;
    const float eps = static_cast<float>(spec_.rmsNormEps);

    // One layer's weights, packed (f32, or bf16 in fast mode) into the same storage every layer.
    // OLMo 2 (spec_.postNorms): no input_layernorm; post_attention_layernorm normalises the
    // attention output and post_feedforward_layernorm the MLP output, each before its add.
    // Gemma (spec_.gemmaNorms): norm weights as 1 + w; post_attention_layernorm on the attention
    // output, pre_feedforward_layernorm before the MLP, post_feedforward_layernorm after it.
    const bool post = spec_.postNorms;
    const bool gemma = spec_.gemmaNorms;
    auto readNorm = [&](const char* role) {
      std::vector<float> v = readTensorF32(w.at(role));
      if (gemma) addOneToNormWeight(v);
      return v;
    };
    const std::vector<float> inNorm = post ? std::vector<float>() : readNorm("input_layernorm");
    const std::vector<float> postNorm = readNorm("post_attention_layernorm");
    const std::vector<float> ffNorm = post || gemma ? readNorm("post_feedforward_layernorm") : std::vector<float>();
    const std::vector<float> preFfNorm = gemma ? readNorm("pre_feedforward_layernorm") : std::vector<float>();
    loadLayerWeights(w);
    // Mixtral / Qwen3-MoE: this layer's router and experts (cpu/arch_moe.h).
    const bool moe = isMoeLayer(w);
    if (moe) moe_.load(spec_, w, bf16_, pool_);
    // The four projections' GEMMs, in the session's precision (0: q|k|v, 1: o, 2: gate|up, 3: down).
    auto project = [&](int which, const float* in, int64_t rows, float* out, bool accumulate) {
      if (stream_) {
        streamed_.gemm(which, in, rows, out, accumulate, pool_);
      } else if (bf16_) {
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
      qNorm = readNorm("q_norm");
      kNorm = readNorm("k_norm");
    }

    // Scratch for one batch of sequences, allocated on first use and kept for later layers.
    if (tok_.empty()) allocateScratch();
    float* x = x_.data();
    float* qkv = qkv_.data();
    float* attn = attn_.data();
    float* mid = mid_.data();
    float* delta = delta_.data();
    TokenStats* tok = tok_.data();

    // Gemma: layer_types' full-attention layers have no window, and in Gemma 3 the others use
    // the local RoPE base.
    const bool fullAttention = layerListed(spec_.fullAttentionLayers, layerIndex_);
    const bool localRope = spec_.localRopeTheta > 0 && !fullAttention;
    const AttentionShape shape{spec_.numHeads, spec_.numKvHeads, spec_.headDim, fullAttention ? 0 : spec_.slidingWindow,
                               static_cast<float>(spec_.attentionScale), static_cast<float>(spec_.attnLogitSoftcapping)};
    // Issue 14 (arch_ops.h): SmolLM3's layers without RoPE; Granite's residual_multiplier.
    const bool rope = layerAppliesRope(spec_, layerIndex_);
    const float residualScale = static_cast<float>(spec_.residualMultiplier);
    if (const char* why = mlpCapture_ ? healUnsupportedReason(spec_) : nullptr) {
      throw EngineError("ERR_UNSUPPORTED", std::string("--heal is not supported for this architecture: ") + why +
                                               ", and the healing fit assumes it is added unchanged");
    }
    LayerStats stats;
    for (auto* v : {&stats.perSequence.tokens, &stats.perSequence.sumCos, &stats.perSequence.nanCount,
                    &stats.perSequence.sumAngular, &stats.perSequence.sumRelMag}) {
      v->assign(seqs_.size(), 0.0);
    }
    for (const Batch& b : batches_) {
      ctl.checkCancelled();
      const int64_t rows = b.rowEnd - b.rowBegin;
      float* hb = h_.data() + b.rowBegin * H;
      const int32_t* pos = positions_.data() + b.rowBegin;

      if (post) {
        project(0, hb, rows, qkv, false);
      } else {
        rmsNorm(hb, H, x, H, rows, H, inNorm.data(), eps, pool_);
        project(0, x, rows, qkv, false);
      }
      if (spec_.attentionBias) addBias(qkv, qkvDim, rows, qkvBias.data(), qkvDim, pool_);
      if (spec_.qkNorm && post) {  // OLMo 2: RMSNorm over the whole q and k projections
        rmsNorm(qkv, qkvDim, qkv, qkvDim, rows, qd, qNorm.data(), eps, pool_);
        rmsNorm(qkv + qd, qkvDim, qkv + qd, qkvDim, rows, kvd, kNorm.data(), eps, pool_);
      } else if (spec_.qkNorm) {  // Qwen3: per-head RMSNorm before RoPE
        headRmsNorm(qkv, qkvDim, rows, spec_.numHeads, spec_.headDim, qNorm.data(), eps, pool_);
        headRmsNorm(qkv + qd, qkvDim, rows, spec_.numKvHeads, spec_.headDim, kNorm.data(), eps, pool_);
      }
      if (rope && archRope_.active) {
        applyArchRope(qkv, qkvDim, seqOffsets_.data(), b.seqBegin, b.seqEnd, b.rowBegin, spec_.numHeads, spec_.headDim, pos, archRope_, pool_);
        applyArchRope(qkv + qd, qkvDim, seqOffsets_.data(), b.seqBegin, b.seqEnd, b.rowBegin, spec_.numKvHeads, spec_.headDim, pos, archRope_,
                      pool_);
      } else if (rope) {
        const RopeTable& table = localRope ? localRope_ : rope_;
        applyRope(qkv, qkvDim, rows, spec_.numHeads, spec_.headDim, pos, table, pool_);
        applyRope(qkv + qd, qkvDim, rows, spec_.numKvHeads, spec_.headDim, pos, table, pool_);
      }

      if (const size_t bi = static_cast<size_t>(&b - batches_.data()); bi < gathers_.size() && !gathers_[bi].empty()) {
        sharedPrefixAttention(gathers_[bi], qkv, qkvDim, attn, shape);  // a batch with shared prefixes
      } else {
        std::vector<int64_t> offsets;
        for (int64_t s = b.seqBegin; s <= b.seqEnd; ++s) offsets.push_back(seqOffsets_[static_cast<size_t>(s)] - b.rowBegin);
        if (bf16_) {
          causalAttentionBf16(qkv, qkvDim, qkv + qd, qkv + qd + kvd, qkvDim, attn, qd, offsets, shape, pool_, kt_, kv16_);
        } else {
          causalAttention(qkv, qkvDim, qkv + qd, qkv + qd + kvd, qkvDim, attn, qd, offsets, shape, pool_, kt_);
        }
      }

      if (post || gemma) {  // OLMo 2, Gemma: h + post_attention_layernorm(o_proj(attn) + bias)
        project(1, attn, rows, mid, false);
        if (spec_.outputBias) addBias(mid, H, rows, oBias.data(), H, pool_);
        rmsNorm(mid, H, mid, H, rows, H, postNorm.data(), eps, pool_);
        scaledResidualAdd(hb, mid, rows * H, 1.0f, pool_);
      } else if (residualScale == 1.0f) {  // first residual add: mid = h + o_proj(attn)
        if (stream_ && bf16_) {
          streamed_.gemmAddTo(1, attn, rows, hb, mid, pool_);  // h added as the tiles are stored
        } else if (bf16_) {
          gemmBf16AddTo(attn, rows, oB_, hb, mid, pool_);
        } else {
          std::memcpy(mid, hb, static_cast<size_t>(rows * H) * sizeof(float));
          project(1, attn, rows, mid, true);
        }
        if (spec_.outputBias) addBias(mid, H, rows, oBias.data(), H, pool_);
      } else {  // Granite: h + (o_proj(attn) + bias) * residual_multiplier
        project(1, attn, rows, mid, false);
        if (spec_.outputBias) addBias(mid, H, rows, oBias.data(), H, pool_);
        scaledResidualAdd(hb, mid, rows * H, residualScale, pool_);
      }
      if (!post) rmsNorm(mid, H, x, H, rows, H, gemma ? preFfNorm.data() : postNorm.data(), eps, pool_);
      if (moe) {
        moe_.forward(x, rows, delta, pool_);
      } else {
        if (bf16_ && fuseSwiglu_ && !gemma && (stream_ || I % 16 == 0)) {
          // SwiGLU applied as gate|up is stored, in bf16, where the down projection reads it.
          const Bf16Activations act16 = swigluBf16Scratch();
          if (stream_) {
            streamed_.gemmSwiglu(post ? mid : x, rows, act16, pool_);
            streamed_.gemm(3, act16, rows, delta, false, pool_);
          } else {
            gemmBf16Swiglu(post ? mid : x, rows, guB_, act16, pool_);
            gemmBf16(act16, rows, downB_, delta, false, pool_);
          }
        } else {
          // [gate | up] rows and the f32 activation: only this path needs them (fast mode's
          // SwiGLU never writes them out), so they are allocated here, on first use.
          if (gateUp_.empty()) gateUp_.resize(static_cast<size_t>(maxBatchRows_ * 2 * I));
          float* gateUp = gateUp_.data();
          project(2, post ? mid : x, rows, gateUp, false);
          if (act_.empty()) act_.resize(static_cast<size_t>(maxBatchRows_ * I));
          float* act = act_.data();
          if (gemma) {
            gegluTanh(gateUp, act, rows, I, pool_);
          } else {
            swiglu(gateUp, act, rows, I, pool_);
          }
          project(3, act, rows, delta, false);
        }
      }
      if (post || gemma) rmsNorm(delta, H, delta, H, rows, H, ffNorm.data(), eps, pool_);  // OLMo 2, Gemma
      if (residualScale != 1.0f) scaleInPlace(delta, rows * H, residualScale, pool_);  // Granite
      if (mlpCapture_) std::memcpy(mlpCapture_ + b.rowBegin * H, delta, static_cast<size_t>(rows * H) * sizeof(float));  // --heal
      residualWithStats(hb, mid, delta, rows, H, tok, pool_);  // second add
      if (const int64_t bad = accumulateStats(tok, rows, stats, seqOffsets_.data(), b.seqBegin, b.seqEnd); bad >= 0) {
        throwNonFiniteRow(b.rowBegin + bad);
      }
      if (ctl.progress) ctl.progress(b.seqEnd, static_cast<int64_t>(seqs_.size()));
    }
    return stats;
  }

  // Re-lays the batches for shared prefixes: positions of a child continue at its prefix length,
  // a family (a root and its children) stays in one batch (a child's attention reads its parent's
  // q/k/v rows of that batch), and each batch with a child gets a gather plan (GatherChunk).
  void setSharedPrefixes(const std::vector<SharedPrefix>& links) override {
    if (archRope_.active && archRope_.longAbove > 0) {
      // longrope picks its table by the sequence's length, which a stripped child no longer shows.
      throw EngineError("ERR_UNSUPPORTED", "shared prefixes are not supported with longrope scaling");
    }
    const int64_t n = static_cast<int64_t>(seqs_.size());
    int64_t maxLen = 1;
    std::vector<int64_t> lastChild(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; ++s) {
      lastChild[static_cast<size_t>(s)] = s;
      const SharedPrefix& l = links[static_cast<size_t>(s)];
      const int64_t p = l.parent >= 0 ? l.length : 0;
      for (int64_t r = seqOffsets_[static_cast<size_t>(s)]; r < seqOffsets_[static_cast<size_t>(s + 1)]; ++r) {
        positions_[static_cast<size_t>(r)] = static_cast<int32_t>(p + r - seqOffsets_[static_cast<size_t>(s)]);
      }
      maxLen = std::max<int64_t>(maxLen, p + static_cast<int64_t>(seqs_[static_cast<size_t>(s)].size()));
      if (l.parent >= 0) lastChild[static_cast<size_t>(l.parent)] = s;  // children come in order
    }
    // Whole families per batch: a batch may only end where no parent before it has a child after.
    batches_.clear();
    gathers_.clear();
    maxBatchRows_ = 0;
    for (int64_t s = 0; s < n;) {
      Batch b{s, s, seqOffsets_[static_cast<size_t>(s)], 0};
      int64_t needEnd = s + 1;
      while (b.seqEnd < n && (b.seqEnd < needEnd || seqOffsets_[static_cast<size_t>(b.seqEnd + 1)] - b.rowBegin <= kBatchTokens)) {
        needEnd = std::max(needEnd, lastChild[static_cast<size_t>(b.seqEnd)] + 1);
        ++b.seqEnd;
      }
      b.rowEnd = seqOffsets_[static_cast<size_t>(b.seqEnd)];
      maxBatchRows_ = std::max(maxBatchRows_, b.rowEnd - b.rowBegin);
      batches_.push_back(b);
      gathers_.push_back(gatherPlan(b, links));
      s = b.seqEnd;
    }
    rope_ = RopeTable::build(spec_, maxLen);
    archRope_ = buildArchRope(spec_, maxLen);
    if (spec_.localRopeTheta > 0) {
      ModelSpec local = spec_;
      local.ropeTheta = spec_.localRopeTheta;
      local.ropeScaling = RopeScalingSpec();
      localRope_ = RopeTable::build(local, maxLen);
    }
  }

  void setMlpCapture(float* dst) override { mlpCapture_ = dst; }
  void setLayerIndex(int64_t layer) override { layerIndex_ = layer; }
  void accumulateHealSums(const float* M, const float* hS, double* G, double* B) override {
    healSumsAccumulate(M, hS, h_.data(), totalTokens_, spec_.hiddenSize, G, B, pool_);
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
    return softmaxPass(finalNorm, lmHead, ctl, nullptr);
  }

  TokenLogprobs tokenLogprobs(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) override {
    TokenLogprobs out;
    out.stats = softmaxPass(finalNorm, lmHead, ctl, &out);
    return out;
  }

  Divergence divergence(const ReferenceHead& ref, const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) override {
    const int64_t T = totalTokens_;
    releaseLayerWeights();
    std::vector<LogitSource> srcs;
    srcs.push_back({ref.residual, &ref.lmHead, finalNormWeight(ref.finalNorm), static_cast<float>(ref.rmsNormEps), ref.normalizedLmHead,
                    "the reference model's logits"});
    srcs.push_back({h_.data(), &lmHead, finalNormWeight(finalNorm), static_cast<float>(spec_.rmsNormEps), spec_.normalizedLmHead, "the logits"});
    const std::vector<int32_t> target = targets();
    std::vector<RowSoftmax> refRows(static_cast<size_t>(T)), rows(static_cast<size_t>(T));
    // KL's numerator per row: sum_j exp(a_j - max_a) (a_j - b_j), in the reference's scale.
    std::vector<double> diff(static_cast<size_t>(T), 0.0);
    streamLogits(srcs, ctl, [&](int64_t r, int64_t v0, int64_t n, const float* const* logits) -> std::pair<int, int64_t> {
      const size_t i = static_cast<size_t>(r);
      const int64_t badRef = foldChunk(refRows[i], logits[0], n, v0, target[i], logits[1], &diff[i]);
      if (badRef >= 0) return {0, badRef};
      const int64_t bad = foldChunk(rows[i], logits[1], n, v0, target[i]);
      if (bad >= 0) return {1, bad};
      return {-1, -1};
    });

    Divergence out;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.kl.resize(static_cast<size_t>(T));
    out.referenceLogprob.resize(static_cast<size_t>(T));
    out.logprob.resize(static_cast<size_t>(T));
    out.referenceArgmax.resize(static_cast<size_t>(T));
    out.argmax.resize(static_cast<size_t>(T));
    for (size_t i = 0; i < static_cast<size_t>(T); ++i) {
      const RowSoftmax &a = refRows[i], &b = rows[i];
      // KL(p || q) = sum_j p_j (a_j - b_j) - (lse_a - lse_b), as sum_j p_j = 1. Identical logits
      // give diff == 0 and equal log-sum-exps (the same arithmetic on the same values), so 0
      // exactly; rounding can leave a tiny negative value for near-identical ones: clamped at 0.
      const double kl = diff[i] / a.sumExp - (a.logSumExp() - b.logSumExp());
      out.kl[i] = kl > 0 ? kl : 0.0;
      out.referenceLogprob[i] = target[i] >= 0 ? -a.nllTerm() : nan;
      out.logprob[i] = target[i] >= 0 ? -b.nllTerm() : nan;
      out.referenceArgmax[i] = a.argmax;
      out.argmax[i] = b.argmax;
    }
    return out;
  }

 private:
  // The final norm's weight as applied (Gemma: 1 + w; the reference model is the same architecture).
  std::vector<float> finalNormWeight(const TensorRef& ref) const {
    std::vector<float> v = readTensorF32(ref);
    if (spec_.gemmaNorms) addOneToNormWeight(v);
    return v;
  }

  // One model's final norm + lm_head over a residual stream [totalTokens, hidden], for streamLogits.
  struct LogitSource {
    const float* h;
    const TensorRef* head;
    std::vector<float> normW;
    float eps;
    bool normalized;
    const char* what;  // how an error names these logits
  };

  // The last layer's packed weights are not needed by the lm_head passes: give their memory back.
  void releaseLayerWeights() {
    moe_.release();
    streamed_.release();
    qkvW_ = PackedWeight();
    oW_ = PackedWeight();
    guW_ = PackedWeight();
    downW_ = PackedWeight();
    qkvB_ = PackedWeightBf16();
    oB_ = PackedWeightBf16();
    guB_ = PackedWeightBf16();
    downB_ = PackedWeightBf16();
  }

  // Per row: the next token it predicts (-1 for a sequence's last token).
  std::vector<int32_t> targets() const {
    std::vector<int32_t> target(static_cast<size_t>(totalTokens_), -1);
    for (size_t s = 0; s < seqs_.size(); ++s) {
      for (size_t p = 0; p + 1 < seqs_[s].size(); ++p) target[static_cast<size_t>(seqOffsets_[s]) + p] = seqs_[s][p + 1];
    }
    return target;
  }

  // nll() and tokenLogprobs(): one streamed log-softmax per row; `perToken` (optional) gets
  // every row's logprob and argmax. sumNll adds the same double terms the logprobs negate, in
  // row order, so -sum(logprob) == sumNll bit for bit.
  NllStats softmaxPass(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl, TokenLogprobs* perToken) {
    const int64_t T = totalTokens_;
    releaseLayerWeights();
    std::vector<LogitSource> srcs;
    srcs.push_back({h_.data(), &lmHead, finalNormWeight(finalNorm), static_cast<float>(spec_.rmsNormEps), spec_.normalizedLmHead, "the logits"});
    const std::vector<int32_t> target = targets();
    std::vector<RowSoftmax> rows(static_cast<size_t>(T));
    streamLogits(srcs, ctl, [&](int64_t r, int64_t v0, int64_t n, const float* const* logits) -> std::pair<int, int64_t> {
      const int64_t bad = foldChunk(rows[static_cast<size_t>(r)], logits[0], n, v0, target[static_cast<size_t>(r)]);
      return {bad >= 0 ? 0 : -1, bad};
    });

    NllStats out;
    if (perToken) {
      perToken->logprob.assign(static_cast<size_t>(T), std::numeric_limits<double>::quiet_NaN());
      perToken->argmax.resize(static_cast<size_t>(T));
      perToken->targetIsArgmax.assign(static_cast<size_t>(T), 0);
    }
    for (int64_t r = 0; r < T; ++r) {
      const size_t i = static_cast<size_t>(r);
      if (target[i] >= 0) {
        const double term = rows[i].nllTerm();
        out.sumNll += term;
        ++out.predictions;
        if (perToken) {
          perToken->logprob[i] = -term;
          perToken->targetIsArgmax[i] = rows[i].argmax == target[i] ? 1 : 0;
        }
      }
      if (perToken) perToken->argmax[i] = rows[i].argmax;
      out.logitsSum += rows[i].logitSum;
    }
    return out;
  }

  // Packs lm_head rows [v0, v0 + n) into `out`; NaN/Inf weights throw ERR_NONFINITE_WEIGHT.
  void packHeadChunk(const LogitSource& src, TensorReader& reader, int64_t v0, int64_t n, PackedWeight& out) {
    const TensorRef& lmHead = *src.head;
    const int64_t H = spec_.hiddenSize;
    const int64_t rowBytes = H * static_cast<int64_t>(dtypeSize(lmHead.dtype));
    if (src.normalized) {
      if (raw_.size() < static_cast<size_t>(n * rowBytes)) raw_.resize(static_cast<size_t>(n * rowBytes));
      reader.read(v0 * rowBytes, n * rowBytes, raw_.data());
      out = packNormalizedRows(raw_.data(), lmHead.dtype, n, H, lmHead, v0 * H);
      return;
    }
    // Every thread reads and converts the rows of its own panels (as the layer weights).
    FirstBadWeight badHead;
    const ConvertToF32Fn convert = converterToF32(lmHead.dtype);
    out.repack(n, H, [&](int64_t row0, int64_t rows, float* dst) {
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

  // The vocabulary-chunk loop shared by nll(), tokenLogprobs() and divergence(): kVocabChunk
  // lm_head rows of every source are packed at a time (never a [tokens, vocab] buffer), each
  // source's logits are computed kLogitRows rows at a time (the final norm recomputed per chunk:
  // cheap next to the GEMM, and it saves a [T, H] buffer), and fold(r, v0, n, logits) folds row
  // r's chunk (logits[s]: source s) into its running state, returning its first non-finite
  // logit as {source, index in the chunk}, or {-1, -1}. Each row is folded by one thread, chunk
  // after chunk in vocabulary order, so results do not depend on the thread count.
  template <typename Fold>
  void streamLogits(std::vector<LogitSource>& srcs, const RunControl& ctl, Fold&& fold) {
    const int64_t H = spec_.hiddenSize, V = spec_.vocabSize, T = totalTokens_;
    const size_t S = srcs.size();
    std::vector<std::unique_ptr<TensorReader>> readers;
    for (const LogitSource& s : srcs) readers.push_back(std::make_unique<TensorReader>(*s.head));
    std::vector<PackedWeight> extraHeads(S > 1 ? S - 1 : 0);  // source 0 packs into headW_
    auto packed = [&](size_t s) -> PackedWeight& { return s == 0 ? headW_ : extraHeads[s - 1]; };
    // The first row whose logits hold NaN/Inf (finite weights can still overflow float32).
    std::mutex badLogitMu;
    int64_t badRow = -1, badIndex = -1;
    int badSource = -1;
    float badValue = 0;
    std::vector<float> x(static_cast<size_t>(kLogitRows * H));
    std::vector<std::vector<float>> logits(S, std::vector<float>(static_cast<size_t>(kLogitRows * kVocabChunk)));
    for (int64_t v0 = 0; v0 < V; v0 += kVocabChunk) {
      ctl.checkCancelled();
      const int64_t n = std::min(kVocabChunk, V - v0);
      for (size_t s = 0; s < S; ++s) packHeadChunk(srcs[s], *readers[s], v0, n, packed(s));
      for (int64_t r0 = 0; r0 < T; r0 += kLogitRows) {
        const int64_t rows = std::min(kLogitRows, T - r0);
        for (size_t s = 0; s < S; ++s) {
          rmsNorm(srcs[s].h + r0 * H, H, x.data(), H, rows, H, srcs[s].normW.data(), srcs[s].eps, pool_);
          gemm(x.data(), rows, packed(s), logits[s].data(), false, pool_);
          // Granite's logits_scaling (every source: a reference is the same architecture).
          if (spec_.logitsScaling != 1.0) divideInPlace(logits[s].data(), rows * n, static_cast<float>(spec_.logitsScaling), pool_);
          // Gemma 2's final_logit_softcapping.
          if (spec_.finalLogitSoftcapping > 0) softcapInPlace(logits[s].data(), rows * n, static_cast<float>(spec_.finalLogitSoftcapping), pool_);
        }
        pool_.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
          std::vector<const float*> l(S);
          for (int64_t i = begin; i < end; ++i) {
            for (size_t s = 0; s < S; ++s) l[s] = logits[s].data() + i * n;
            const std::pair<int, int64_t> bad = fold(r0 + i, v0, n, l.data());
            if (bad.first >= 0) {
              std::lock_guard<std::mutex> lock(badLogitMu);
              if (badRow < 0 || r0 + i < badRow || (r0 + i == badRow && bad.first < badSource)) {
                badRow = r0 + i;
                badSource = bad.first;
                badIndex = v0 + bad.second;
                badValue = l[static_cast<size_t>(bad.first)][bad.second];
              }
            }
          }
        });
      }
      if (badRow >= 0) {
        const TokenPlace at = placeOfRow(seqOffsets_, badRow);
        const LogitSource& src = srcs[static_cast<size_t>(badSource)];
        throw EngineError("ERR_NONFINITE_LOGITS", std::string(src.what) + " (final norm + lm_head '" + src.head->name + "') became non-finite (" +
                                                      nonFiniteName(badValue) + ") at sequence " + std::to_string(at.sequence) +
                                                      ", position " + std::to_string(at.position) + ", vocabulary index " +
                                                      std::to_string(badIndex) + " (the first one in vocabulary rows " +
                                                      std::to_string(v0) + ".." + std::to_string(v0 + n - 1) +
                                                      "): perplexity would be NaN");
      }
      if (ctl.progress) ctl.progress(v0 + n, V);
    }
    headW_ = PackedWeight();
  }

  // Packs the layer's four GEMM weights, parts [from, to) in this order (0: q|k|v, 1: o,
  // 2: gate|up, 3: down), counting each finished part in `done` when given: the order in which
  // an error is found, with or without the prefetch.
  template <typename Packed>
  void packLayer(const LayerRefs& w, Packed& qkv, Packed& o, Packed& gu, Packed& down, ThreadPool& pool,
                 const std::atomic<bool>* stop = nullptr, int from = 0, std::atomic<int>* done = nullptr, int to = 4) {
    for (int part = from; part < to; ++part) {
      Packed* outs[] = {&qkv, &o, &gu, &down};
      const std::vector<const TensorRef*> parts = layerPartRefs(spec_, w, part);
      if (!parts.empty()) repackStacked(parts, layerPartK(spec_, part), *outs[part], pool, stop);
      if (done) done->store(part + 1);
    }
  }

  // ---- Weight prefetch (issue 11): while layer l computes, a helper thread reads and packs
  // layer l+1's weights (the `next` hint) into spare_, a second set of packed buffers; the next
  // call swaps them in when its refs are the prefetched ones, else packs on the critical path as
  // before. Peak memory: two layers' packed weights plus activations. An error met while
  // prefetching (NaN weight, IO) is kept and rethrown when that layer runs, at the same point
  // (after its norms are read) with the same code and message; the pack is the same code
  // (single-threaded there), so the packed bits, and every result, are identical.
  struct PackedLayer {
    PackedWeight qkv, o, gu, down;
    PackedWeightBf16 qkvB, oB, guB, downB;
  };

  // This layer's weights into qkvW_.. (f32) or qkvB_.. (bf16), then the next layer's prefetch.
  void loadLayerWeights(const LayerRefs& w) {
    stream_ = stage_ == Stage::Streamed || (stage_ == Stage::Auto && batches_.size() == 1);
    if (stream_) {  // mapped, packed tile by tile by the GEMMs (streamed_layer.h)
      if (prefetchThread_.joinable()) dropPrefetch();
      streamed_.map(spec_, w);
      if (next_) adviseWillNeed(*next_);
      return;
    }
    int from = 0;  // the parts [0, from) come prefetched
    if (prefetchThread_.joinable()) {
      // What the prefetcher has not finished by now is packed here by the whole pool (faster
      // than its one thread): it stops at its next panel, keeping the parts it completed.
      prefetchStop_.store(true);
      prefetchThread_.join();
      if (sameRefs(prefetchRefs_, w)) {
        if (prefetchError_) {  // found in part prefetchDone_, before any later part is read
          std::exception_ptr e = prefetchError_;
          prefetchError_ = nullptr;
          std::rethrow_exception(e);
        }
        from = prefetchDone_.load();
        std::swap(qkvW_, spare_.qkv);
        std::swap(oW_, spare_.o);
        std::swap(guW_, spare_.gu);
        std::swap(downW_, spare_.down);
        std::swap(qkvB_, spare_.qkvB);
        std::swap(oB_, spare_.oB);
        std::swap(guB_, spare_.guB);
        std::swap(downB_, spare_.downB);
      }
      prefetchError_ = nullptr;
    }
    if (bf16_) {
      packLayer(w, qkvB_, oB_, guB_, downB_, pool_, nullptr, from);
    } else {
      packLayer(w, qkvW_, oW_, guW_, downW_, pool_, nullptr, from);
    }
    if (next_) {
      adviseWillNeed(*next_);
      if (prefetchEnabled_) startPrefetch(*next_);
    }
  }

  // Asks the kernel to read the next layer's bytes now (asynchronously, no CPU of ours): with a
  // cold page cache the disk works while this layer computes, prefetch thread or not. Advice
  // only: a failure here changes nothing (errors surface when the bytes are read).
  static void adviseWillNeed(const LayerRefs& next) {
#if defined(__linux__)
    for (const auto& entry : next) {
      const TensorRef& ref = entry.second;
      const int fd = ::open(ref.file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      (void)::posix_fadvise(fd, static_cast<off_t>(ref.offset), static_cast<off_t>(ref.byteLength()), POSIX_FADV_WILLNEED);
      ::close(fd);
    }
#else
    (void)next;
#endif
  }

  void startPrefetch(const LayerRefs& next) {
    prefetchRefs_ = next;  // a copy: the caller's refs live only during its call
    prefetchStop_.store(false);
    prefetchError_ = nullptr;
    prefetchDone_.store(0);
    prefetchThread_ = std::thread([this] {
#if defined(__linux__)
      pthread_setname_np(pthread_self(), "sg-prefetch");  // scripts/bench-profile.sh tells its samples apart
      // When the pool already has a thread on every core, a prefetcher of normal priority
      // preempts pool workers, and each preempted worker stalls its whole parallelFor (measured
      // on 2 cores: layer 0 up to 2x slower). As SCHED_IDLE it runs only on a core that would
      // otherwise idle (barriers, attention's tail, syscalls) and yields the moment a worker
      // wakes; what it has not packed by the next layer, the pool packs (loadLayerWeights).
      if (prefetchIdle_) {
        sched_param sp{};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
      }
#endif
      // The parts [from, to) into spare_.
      auto pack = [this](int from, int to) {
        if (bf16_) {
          packLayer(prefetchRefs_, spare_.qkvB, spare_.oB, spare_.guB, spare_.downB, prefetchPool_, &prefetchStop_, from, &prefetchDone_, to);
        } else {
          packLayer(prefetchRefs_, spare_.qkv, spare_.o, spare_.gu, spare_.down, prefetchPool_, &prefetchStop_, from, &prefetchDone_, to);
        }
      };
      try {
        // A test hook (SHORTGPT_PREFETCH_DELAY_MS): after the first part, hold the rest back,
        // still stoppable, so that a test can cancel or dispose while the prefetch is surely in
        // flight, and see a layer start with only part of its weights prefetched.
        if (prefetchDelayMs_ > 0) {
          pack(0, 1);
          for (int64_t ms = prefetchDelayMs_; ms > 0; ms -= 10) {
            if (prefetchStop_.load()) throw PrefetchStopped{};
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }
        pack(prefetchDone_.load(), 4);
      } catch (const PrefetchStopped&) {
        // Stopped: the parts counted in prefetchDone_ are complete, the rest is packed by the caller.
      } catch (...) {
        prefetchError_ = std::current_exception();
      }
    });
  }

  // Stops the prefetcher at its next panel, joins it and forgets what it held.
  void dropPrefetch() {
    if (prefetchThread_.joinable()) {
      prefetchStop_.store(true);
      prefetchThread_.join();
    }
    prefetchRefs_.clear();
    prefetchError_ = nullptr;
  }

  // Whether two layers' refs name the same bytes read the same way (file, offset, dtype, shape
  // per role) and the same names (an error message names the tensor).
  static bool sameRefs(const LayerRefs& a, const LayerRefs& b) {
    if (a.size() != b.size() || a.empty()) return false;
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
      const TensorRef &x = ia->second, &y = ib->second;
      if (ia->first != ib->first || x.name != y.name || x.file != y.file || x.offset != y.offset || x.dtype != y.dtype ||
          x.shape != y.shape) {
        return false;
      }
    }
    return true;
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

  // One causalAttention call over a gathered layout: per sequence of the batch, its parent's
  // prefix rows (children only) then its own rows, each a sequence starting at position 0. Only a
  // sequence's own rows are scattered back; the prefix rows serve as keys/values, and their
  // queries are skipped in whole 32-row blocks (queryFrom), so at most 31 prefix rows per child
  // are computed again and dropped. The prefix's keys are transposed again per child.
  struct GatherChunk {
    std::vector<std::pair<int64_t, int64_t>> copies;  // (batch row, rows) appended in order
    std::vector<int64_t> offsets;                      // sequence boundaries in the gathered rows
    std::vector<int64_t> queryFrom;                    // per sequence: its prefix rows (keys only)
    struct Out {
      int64_t gathered, batchRow, rows;
    };
    std::vector<Out> outs;
    int64_t rows = 0;
  };
  using GatherPlan = std::vector<GatherChunk>;

  // A batch's plan (empty when it holds no child: the plain path). Chunks of at most about
  // kGatherRows rows bound the scratch however many children share one parent.
  GatherPlan gatherPlan(const Batch& b, const std::vector<SharedPrefix>& links) {
    constexpr int64_t kGatherRows = 4 * kBatchTokens;
    bool anyChild = false;
    for (int64_t s = b.seqBegin; s < b.seqEnd; ++s) anyChild = anyChild || links[static_cast<size_t>(s)].parent >= 0;
    if (!anyChild) return {};
    GatherPlan plan(1);
    for (int64_t s = b.seqBegin; s < b.seqEnd; ++s) {
      const SharedPrefix& l = links[static_cast<size_t>(s)];
      const int64_t own = seqOffsets_[static_cast<size_t>(s + 1)] - seqOffsets_[static_cast<size_t>(s)];
      const int64_t p = l.parent >= 0 ? l.length : 0;
      if (plan.back().rows > 0 && plan.back().rows + p + own > kGatherRows) plan.emplace_back();
      GatherChunk& c = plan.back();
      if (c.offsets.empty()) c.offsets.push_back(0);
      if (p > 0) c.copies.push_back({seqOffsets_[static_cast<size_t>(l.parent)] - b.rowBegin, p});
      c.copies.push_back({seqOffsets_[static_cast<size_t>(s)] - b.rowBegin, own});
      c.outs.push_back({c.rows + p, seqOffsets_[static_cast<size_t>(s)] - b.rowBegin, own});
      c.queryFrom.push_back(p);
      c.rows += p + own;
      c.offsets.push_back(c.rows);
      maxGatherRows_ = std::max(maxGatherRows_, c.rows);
    }
    return plan;
  }

  void sharedPrefixAttention(const GatherPlan& plan, const float* qkv, int64_t qkvDim, float* attn, const AttentionShape& shape) {
    const int64_t qd = spec_.qDim(), kvd = spec_.kvDim();
    gqkv_.resize(static_cast<size_t>(maxGatherRows_ * qkvDim));
    gattn_.resize(static_cast<size_t>(maxGatherRows_ * qd));
    for (const GatherChunk& c : plan) {
      int64_t at = 0;
      for (const auto& [row, rows] : c.copies) {
        std::memcpy(gqkv_.data() + at * qkvDim, qkv + row * qkvDim, static_cast<size_t>(rows * qkvDim) * sizeof(float));
        at += rows;
      }
      float* g = gqkv_.data();
      if (bf16_) {
        causalAttentionBf16(g, qkvDim, g + qd, g + qd + kvd, qkvDim, gattn_.data(), qd, c.offsets, shape, pool_, kt_, kv16_,
                            &c.queryFrom);
      } else {
        causalAttention(g, qkvDim, g + qd, g + qd + kvd, qkvDim, gattn_.data(), qd, c.offsets, shape, pool_, kt_, &c.queryFrom);
      }
      for (const GatherChunk::Out& o : c.outs) {
        std::memcpy(attn + o.batchRow * qd, gattn_.data() + o.gathered * qd, static_cast<size_t>(o.rows * qd) * sizeof(float));
      }
    }
  }

  // The fused SwiGLU's bf16 output, the down projection's input: allocated on first use, zeroed
  // once (the columns from I to the stride are the K padding the kernels read; never written).
  Bf16Activations swigluBf16Scratch() {
    const int64_t lda = bf16ActivationStride(spec_.intermediateSize);
    const size_t need = static_cast<size_t>(bf16ActivationRows(maxBatchRows_) * lda);
    if (act16_.size() < need) act16_.assign(need, 0);
    return {act16_.data(), lda};
  }

  void allocateScratch() {
    const int64_t R = maxBatchRows_, H = spec_.hiddenSize;
    const int64_t qd = spec_.qDim(), kvd = spec_.kvDim();
    x_.resize(static_cast<size_t>(R * H));
    qkv_.resize(static_cast<size_t>(R * (qd + 2 * kvd)));
    attn_.resize(static_cast<size_t>(R * qd));
    mid_.resize(static_cast<size_t>(R * H));
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
  // Shared prefixes (setSharedPrefixes): per batch its gather plan (empty: none), and the
  // gathered q|k|v and attention output of the largest chunk.
  std::vector<std::vector<GatherChunk>> gathers_;
  int64_t maxGatherRows_ = 0;
  std::vector<float> gqkv_, gattn_;
  ThreadPool pool_;
  RopeTable rope_;
  ArchRope archRope_;  // arch_ops.h: active only for partial rotary / longrope
  RopeTable localRope_;  // Gemma 3: the sliding layers' table (spec_.localRopeTheta)
  MoeMlp moe_;  // Mixtral / Qwen3-MoE: the current MoE layer's router and experts
  // Large buffers live in packed-weight storage: 2 MiB aligned and advised as huge pages, and
  // not zero-filled, which on the VMs we measured saved thousands of 4 KiB page faults (about
  // 20 us each) per session.
  using Buffer = std::vector<float, CacheAlignedAllocator<float>>;
  Buffer h_;  // the residual stream, [totalTokens, hidden] f32
  // Per-batch scratch, R = maxBatchRows_ rows: normed input [R, H]; q | k | v [R, qd + 2 kvd];
  // attention output [R, qd]; h + attention [R, H]; gate | up [R, 2I]; silu(gate) * up [R, I];
  // MLP output [R, H]; per-token statistics [R].
  Buffer x_, qkv_, attn_, mid_, gateUp_, act_, delta_;
  std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> act16_;  // fast mode's fused SwiGLU output
  std::vector<TokenStats> tok_;
  float* mlpCapture_ = nullptr;  // --heal: where forwardLayer copies the MLP output (owned by the Session)
  std::vector<float> kt_;  // attention's transposed keys, [kvHeads, headDim, padded batch rows]
  std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> kv16_;  // fast mode's attention on AMX: K and V staged in bf16 tiles
  // The current layer's packed weights (storage reused layer after layer: no fresh page faults).
  PackedWeight qkvW_, oW_, guW_, downW_;
  PackedWeightBf16 qkvB_, oB_, guB_, downB_;  // the same in fast mode
  enum class Stage { Auto, Packed, Streamed };
  Stage stage_ = Stage::Auto;
  bool stream_ = false;                        // this layer's weights read where they lie (streamed_)
  bool fuseSwiglu_ = true;                     // fast mode: SwiGLU fused into the gate|up GEMM's store
  StreamedLayer streamed_;
  // The prefetch (loadLayerWeights): the next layer's packed weights, packed by prefetchThread_
  // on its own one-thread pool (it runs beside pool_'s threads). On by default where the pool
  // leaves a hardware thread free; SHORTGPT_PREFETCH=1/0 forces it (tests, measurements).
  PackedLayer spare_;
  LayerRefs prefetchRefs_;  // what spare_ holds or is being packed with (empty: nothing)
  std::exception_ptr prefetchError_;  // what packing prefetchRefs_ threw
  std::thread prefetchThread_;
  std::atomic<bool> prefetchStop_{false};
  std::atomic<int> prefetchDone_{0};  // parts of spare_ complete (packLayer's order)
  bool prefetchIdle_ = false;  // the pool has a thread per hardware thread: prefetch in idle time only
  ThreadPool prefetchPool_{1};
  const LayerRefs* next_ = nullptr;  // forwardLayerWithNext's hint, during that call only
  bool prefetchEnabled_ = true;
  int64_t prefetchDelayMs_ = 0;  // SHORTGPT_PREFETCH_DELAY_MS, tests only
  int64_t layerIndex_ = 0;  // setLayerIndex: the layer forwardLayer runs (spec_.noRopeLayers)
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
