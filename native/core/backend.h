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
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;
  // llama3 only (transformers' _compute_llama3_parameters).
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  double originalMaxPositionEmbeddings = 8192.0;
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
};

struct NllStats {
  double sumNll = 0;
  int64_t predictions = 0;
  double logitsSum = 0;  // every final logit of every position, a checksum
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
  // Copies each sequence's last-token hidden state into dst ([sequences, hidden] f32).
  virtual void copyLastTokenStates(float* dst) const = 0;
  // Final RMSNorm + lm_head (in vocabulary chunks) + stable log-softmax.
  virtual NllStats nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) = 0;
};

}  // namespace shortgpt
