// The device-neutral vocabulary of the engine: the model spec a Session is built for, references
// to weight tensors on disk, per-layer statistic sums, and the Backend interface that the CPU
// backend (native/cpu/cpu_backend.*) implements today and a CUDA backend will implement later.
// Nothing here knows where activations live.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace shortgpt {

// Every failure the engine reports carries a stable code (ERR_SHAPE, ERR_IO, ERR_ABORTED, ...)
// that the binding copies onto the JavaScript Error.
class EngineError : public std::runtime_error {
 public:
  EngineError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

struct RopeScalingSpec {
  enum class Type { None, Linear, Llama3, LongRope };
  Type type = Type::None;
  double factor = 1.0;
  // llama3 only (transformers' _compute_llama3_parameters).
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  double originalMaxPositionEmbeddings = 8192.0;
  // longrope only (Phi-3; transformers' _compute_longrope_parameters): per rotary frequency, the
  // divisor for sequences of at most originalMaxPositionEmbeddings tokens (short) and longer ones
  // (long); cos and sin times attentionFactor.
  std::vector<double> shortFactor, longFactor;
  double attentionFactor = 1.0;
};

struct ModelSpec {
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  RopeScalingSpec ropeScaling;
  int64_t slidingWindow = 0;  // 0: full causal attention
  bool qkNorm = false;         // Qwen3 q_norm / k_norm
  bool attentionBias = false;  // Qwen2 q/k/v biases
  // o_proj bias: Llama / Qwen3 with attention_bias (LlamaAttention builds o_proj with
  // bias=config.attention_bias); Qwen2 has q/k/v biases but none on o_proj.
  bool outputBias = false;
  // Baichuan 2's NormHead: each lm_head row is scaled to unit L2 norm before the logits
  // (modeling_baichuan.py, nn.functional.normalize(self.weight)); Baichuan 1 does not.
  bool normalizedLmHead = false;
  bool fusedQkv = false;       // Baichuan W_pack = [q; k; v] rows
  // Granite (modeling_granite.py): embeddings * embeddingMultiplier; each sublayer's output
  // (o_proj incl. bias, down_proj) * residualMultiplier before its residual add; attention
  // scores * attentionScale (0: 1/sqrt(headDim)); logits / logitsScaling.
  double embeddingMultiplier = 1.0;
  double residualMultiplier = 1.0;
  double attentionScale = 0.0;
  double logitsScaling = 1.0;
  // SmolLM3: the layers (Session::forwardLayer's index) that apply no rotary embedding.
  std::vector<int64_t> noRopeLayers;
  // OLMo 2 (modeling_olmo2.py): no input_layernorm; post_attention_layernorm on the attention
  // output and post_feedforward_layernorm on the MLP output, each before its residual add; with
  // qkNorm, q_norm / k_norm span the whole projection ([qDim], [kvDim]) instead of one head.
  bool postNorms = false;
  // Phi-3: role "gate_up_proj" = [gate; up] rows instead of gate_proj and up_proj.
  bool fusedGateUp = false;
  // Rotated dimensions per head (partial_rotary_factor); 0 = headDim.
  int64_t rotaryDim = 0;
  // Gemma 2/3 (modeling_gemma2.py / modeling_gemma3.py): every RMSNorm weight as (1 + w); the
  // layer runs input_layernorm -> attention -> post_attention_layernorm -> add, then
  // pre_feedforward_layernorm -> GeGLU MLP (gelu_pytorch_tanh) -> post_feedforward_layernorm -> add.
  bool gemmaNorms = false;
  bool roundEmbeddingScale = false;  // embeddingMultiplier rounded to the embedding table's dtype
  double attnLogitSoftcapping = 0;   // cap * tanh(score / cap) before the softmax; 0: none
  double finalLogitSoftcapping = 0;  // the same on the final logits
  std::vector<int64_t> fullAttentionLayers;  // with slidingWindow: layers without the window
  double localRopeTheta = 0;  // Gemma 3: the sliding layers' RoPE base (no scaling); 0: none
  // Mixtral / Qwen3-MoE (cpu/arch_moe.h): a layer whose weights carry "moe_router" has a sparse
  // MLP of numExperts experts ("expert_gate.<e>", "expert_up.<e>", "expert_down.<e>", each of
  // moeIntermediateSize), numExpertsPerTok per token, top-k weights renormalised when
  // normTopkProb; other layers have the plain MLP. 0 experts: no MoE layer.
  int64_t numExperts = 0;
  int64_t numExpertsPerTok = 0;
  int64_t moeIntermediateSize = 0;
  bool normTopkProb = false;

  int64_t qDim() const { return numHeads * headDim; }
  int64_t kvDim() const { return numKvHeads * headDim; }
};

// Where a tensor's bytes are: the native side reads them itself, weights never pass through JS.
struct TensorRef {
  std::string name;  // for messages; the role when the caller gave no name
  std::string file;
  int64_t offset = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t byteLength() const { return elements() * static_cast<int64_t>(dtypeSize(dtype)); }
};

// A decoder layer's tensors by role (LayerTensorRole in lib/checkpoint/types.ts).
using LayerRefs = std::map<std::string, TensorRef>;

// Raw per-layer sums, reduced in double in token order (bit-identical for any thread count).
struct LayerStats {
  int64_t tokens = 0;
  double sumCos = 0;      // an undefined cosine (a zero-norm state) counts as 0.5
  int64_t nanCount = 0;   // tokens whose cosine was undefined
  double sumAngular = 0;  // arccos(cos) / pi
  double sumRelMag = 0;   // ||out - in|| / ||out||
  // The same sums per sequence (per window), each of sequenceCount entries, summed in token
  // order within the sequence; they let a caller resample windows (bootstrap) without another
  // pass. Empty when the backend does not keep them (the caller then refuses what needs them).
  struct PerSequence {
    std::vector<double> tokens, sumCos, nanCount, sumAngular, sumRelMag;
  } perSequence;
};

struct NllStats {
  double sumNll = 0;
  int64_t predictions = 0;
  double logitsSum = 0;  // every final logit of every position, a checksum
};

// Per row of the residual stream (Backend::tokenLogprobs): log p(next token) (NaN for each
// sequence's last token), the argmax of the next-token distribution (the lowest id among equal
// maxima) and whether the target is it, plus the NllStats of the same pass (-sum of the logprobs
// in row order == stats.sumNll, bit for bit).
struct TokenLogprobs {
  std::vector<double> logprob;
  std::vector<int32_t> argmax;
  std::vector<uint8_t> targetIsArgmax;
  NllStats stats;
};

// The reference side of Backend::divergence: another model's residual stream over the same
// sequences ([totalTokens, hidden] f32, e.g. a Session::snapshot), its final norm and lm_head.
struct ReferenceHead {
  const float* residual = nullptr;
  TensorRef finalNorm, lmHead;
  double rmsNormEps = 1e-6;
  bool normalizedLmHead = false;
};

// Per row: KL(reference || this) of the next-token distributions (for every row, last tokens
// included), both models' log p(next token) (NaN for a last token) and both argmaxes.
struct Divergence {
  std::vector<double> kl;
  std::vector<double> referenceLogprob, logprob;
  std::vector<int32_t> referenceArgmax, argmax;
};

// A sequence that shares its first `length` tokens with an earlier sequence `parent` (a root:
// one without a parent of its own). The Session strips those tokens: the backend holds only the
// child's tokens from position `length` on (positions continue at `length` for RoPE), and its
// attention at every layer sees the parent's keys/values for positions [0, length) plus its own.
// parent -1 (length 0): the sequence stands alone.
struct SharedPrefix {
  int64_t parent = -1;
  int64_t length = 0;
};

// How long-running work talks back: `cancelled` is polled between batches (the backend then
// throws ERR_ABORTED), `progress(done, total)` is called after each batch of sequences.
struct RunControl {
  std::function<bool()> cancelled;
  std::function<void(int64_t done, int64_t total)> progress;

  void checkCancelled() const {
    if (cancelled && cancelled()) throw EngineError("ERR_ABORTED", "the operation was aborted");
  }
};

// One device's implementation of the layer-streaming forward pass. The Session validates
// shapes and call order before calling in; a Backend only computes.
class Backend {
 public:
  virtual ~Backend() = default;
  // h = embed_tokens[token] for every token of every sequence.
  virtual void embed(const TensorRef& table, const RunControl& ctl) = 0;
  // Runs every sequence through one decoder layer, replacing the residual stream in place.
  virtual LayerStats forwardLayer(const LayerRefs& weights, const RunControl& ctl) = 0;
  // The same, told which layer runs next (null: none, or unknown) so that a backend can read and
  // copy its weights while this one computes (the CUDA backend's second stream). The default
  // ignores the hint; `next` has passed Session::validateLayer.
  virtual LayerStats forwardLayerWithNext(const LayerRefs& weights, const LayerRefs* next, const RunControl& ctl) {
    (void)next;
    return forwardLayer(weights, ctl);
  }
  // Called by the Session before each forwardLayer with the layer's index in the checkpoint, for
  // per-layer choices of the spec (noRopeLayers). The default ignores it: a backend that does
  // not implement those choices refuses such a spec when it is created.
  virtual void setLayerIndex(int64_t layer) { (void)layer; }
  // The whole residual stream [totalTokens, hidden] f32, out of and into the backend (snapshots
  // let a caller resume from a layer boundary without recomputing the layers before it).
  // Not pure, so a backend written before snapshots existed still builds; it reports
  // ERR_UNSUPPORTED until it implements them.
  virtual void copyResidual(float* dst) const {
    (void)dst;
    throw EngineError("ERR_UNSUPPORTED", "snapshot() is not supported by this backend");
  }
  virtual void setResidual(const float* src) {
    (void)src;
    throw EngineError("ERR_UNSUPPORTED", "restore() is not supported by this backend");
  }
  // Healing (issue 13). While `dst` is set, every forwardLayer writes its MLP output (down_proj's
  // output, before the residual add) for all tokens into dst ([totalTokens, hidden] f32); null
  // stops it. accumulateHealSums adds MᵀM into G and Mᵀ(h - hS + M) into B ([hidden, hidden]
  // double), h being the current residual stream (cpu/gram.h). Not pure: other backends refuse.
  virtual void setMlpCapture(float* dst) {
    (void)dst;
    throw EngineError("ERR_UNSUPPORTED", "--heal (MLP-output capture) is not supported by this backend; use --device cpu");
  }
  virtual void accumulateHealSums(const float* M, const float* hS, double* G, double* B) {
    (void)M, (void)hS, (void)G, (void)B;
    throw EngineError("ERR_UNSUPPORTED", "--heal (least-squares sums) is not supported by this backend; use --device cpu");
  }
  // Called once, right after construction and before embed, when some sequence shares a prefix
  // (the backend's sequences are then the stripped ones; links[s] per sequence, validated by the
  // Session). Not pure: a backend without it refuses, and the caller runs whole sequences.
  virtual void setSharedPrefixes(const std::vector<SharedPrefix>& links) {
    (void)links;
    throw EngineError("ERR_UNSUPPORTED", "shared prefixes are not supported by this backend");
  }
  // Copies each sequence's last-token hidden state into dst ([sequences, hidden] f32).
  virtual void copyLastTokenStates(float* dst) const = 0;
  // Final RMSNorm + lm_head (in vocabulary chunks) + stable log-softmax.
  virtual NllStats nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) = 0;
  // The same pass, keeping every row's logprob and argmax (multiple-choice loglikelihoods).
  virtual TokenLogprobs tokenLogprobs(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) {
    (void)finalNorm, (void)lmHead, (void)ctl;
    throw EngineError("ERR_UNSUPPORTED", "tokenLogprobs() is not supported by this backend");
  }
  // One pass over vocabulary chunks of both lm_heads: KL(reference || this) per row, streamed
  // (never a [tokens, vocab] buffer). `ref` has passed Session::divergence's checks.
  virtual Divergence divergence(const ReferenceHead& ref, const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) {
    (void)ref, (void)finalNorm, (void)lmHead, (void)ctl;
    throw EngineError("ERR_UNSUPPORTED", "divergence() (eval --compare) is not supported by this backend");
  }
};

}  // namespace shortgpt
