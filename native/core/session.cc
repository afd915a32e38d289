#include "core/session.h"

#include <cmath>
#include <string>

namespace shortgpt {

namespace {

std::string shapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void expectShape(const TensorRef& t, const std::vector<int64_t>& want) {
  if (t.shape != want) {
    throw EngineError("ERR_SHAPE", "tensor '" + t.name + "' in " + t.file + " has shape " + shapeString(t.shape) +
                                       ", expected " + shapeString(want) + " for this model's config");
  }
}

void requirePositive(int64_t v, const char* name) {
  if (v <= 0) throw EngineError("ERR_INVALID_ARG", std::string("model spec: ") + name + " must be positive, got " + std::to_string(v));
}

}  // namespace

Session::Session(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, bool keepLastTokenStates,
                 const BackendFactory& makeBackend, const std::vector<SharedPrefix>& prefixes)
    : spec_(spec), keepLast_(keepLastTokenStates) {
  requirePositive(spec.hiddenSize, "hiddenSize");
  requirePositive(spec.intermediateSize, "intermediateSize");
  requirePositive(spec.numHeads, "numHeads");
  requirePositive(spec.numKvHeads, "numKvHeads");
  requirePositive(spec.headDim, "headDim");
  requirePositive(spec.vocabSize, "vocabSize");
  if (spec.numHeads % spec.numKvHeads != 0) {
    throw EngineError("ERR_INVALID_ARG", "model spec: numHeads (" + std::to_string(spec.numHeads) +
                                             ") must be a multiple of numKvHeads (" + std::to_string(spec.numKvHeads) + ")");
  }
  if (spec.headDim % 2 != 0) throw EngineError("ERR_INVALID_ARG", "model spec: headDim must be even for rotary embeddings, got " + std::to_string(spec.headDim));
  if (spec.slidingWindow < 0) throw EngineError("ERR_INVALID_ARG", "model spec: slidingWindow must be >= 0");
  if (!(spec.rmsNormEps >= 0) || !(spec.ropeTheta > 0)) throw EngineError("ERR_INVALID_ARG", "model spec: rmsNormEps must be >= 0 and ropeTheta > 0");
  if (spec.ropeScaling.type != RopeScalingSpec::Type::None && !(spec.ropeScaling.factor > 0)) {
    throw EngineError("ERR_INVALID_ARG", "model spec: ropeScaling.factor must be positive");
  }
  if (spec.ropeScaling.type == RopeScalingSpec::Type::Llama3 && !(spec.ropeScaling.highFreqFactor != spec.ropeScaling.lowFreqFactor)) {
    throw EngineError("ERR_INVALID_ARG", "model spec: llama3 ropeScaling needs highFreqFactor != lowFreqFactor");
  }
  if (sequences.empty()) throw EngineError("ERR_INVALID_ARG", "no sequences: a session needs at least one token sequence");
  for (size_t s = 0; s < sequences.size(); ++s) {
    if (sequences[s].empty()) throw EngineError("ERR_INVALID_ARG", "sequence " + std::to_string(s) + " is empty");
    for (size_t p = 0; p < sequences[s].size(); ++p) {
      int32_t id = sequences[s][p];
      if (id < 0 || id >= spec.vocabSize) {
        throw EngineError("ERR_TOKEN_RANGE", "sequence " + std::to_string(s) + ", position " + std::to_string(p) + ": token id " +
                                                 std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(spec.vocabSize) + ")");
      }
    }
  }
  const bool shared = checkSharedPrefixes(sequences, prefixes);
  if (shared) {
    // Children keep only their own tokens; their parents (earlier roots) are still whole here.
    for (size_t s = sequences.size(); s-- > 0;) {
      const int64_t p = prefixes[s].length;
      if (prefixes[s].parent >= 0) sequences[s].erase(sequences[s].begin(), sequences[s].begin() + p);
    }
  }
  for (const auto& seq : sequences) totalTokens_ += static_cast<int64_t>(seq.size());
  sequenceCount_ = static_cast<int64_t>(sequences.size());
  lastStates_.sequences = sequenceCount_;
  lastStates_.hiddenSize = spec.hiddenSize;
  backend_ = makeBackend(spec_, std::move(sequences));
  if (shared) backend_->setSharedPrefixes(prefixes);
}

bool Session::checkSharedPrefixes(const std::vector<std::vector<int32_t>>& seqs, const std::vector<SharedPrefix>& links) {
  if (links.empty()) return false;
  if (links.size() != seqs.size()) {
    throw EngineError("ERR_INVALID_ARG", "sharedPrefixes has " + std::to_string(links.size()) + " entries, expected one per sequence (" +
                                             std::to_string(seqs.size()) + ")");
  }
  bool any = false;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const std::string who = "sequence " + std::to_string(s) + ": ";
    const int64_t parent = links[s].parent, p = links[s].length;
    if (parent == -1) {
      if (p != 0) throw EngineError("ERR_INVALID_ARG", who + "shared-prefix length " + std::to_string(p) + " without a parent (parent -1 needs length 0)");
      continue;
    }
    if (parent < 0 || parent >= static_cast<int64_t>(s)) {
      throw EngineError("ERR_INVALID_ARG", who + "shared-prefix parent " + std::to_string(parent) + " must be an earlier sequence (0.." +
                                               std::to_string(static_cast<int64_t>(s) - 1) + ") or -1");
    }
    // One level only: a parent's rows hold its whole sequence, which the child's attention reads.
    if (links[static_cast<size_t>(parent)].parent != -1) {
      throw EngineError("ERR_INVALID_ARG", who + "shared-prefix parent " + std::to_string(parent) +
                                               " shares a prefix itself; a parent must be a root sequence (parent -1)");
    }
    const int64_t parentLen = static_cast<int64_t>(seqs[static_cast<size_t>(parent)].size()), ownLen = static_cast<int64_t>(seqs[s].size());
    if (p < 1 || p > parentLen) {
      throw EngineError("ERR_INVALID_ARG", who + "shared-prefix length " + std::to_string(p) + " must be in [1, " + std::to_string(parentLen) +
                                               "] (parent sequence " + std::to_string(parent) + " has " + std::to_string(parentLen) + " tokens)");
    }
    if (p >= ownLen) {
      throw EngineError("ERR_INVALID_ARG", who + "shared-prefix length " + std::to_string(p) + " leaves none of its " + std::to_string(ownLen) +
                                               " tokens to compute; it must be below the sequence's length");
    }
    for (int64_t i = 0; i < p; ++i) {
      const int32_t a = seqs[s][static_cast<size_t>(i)], b = seqs[static_cast<size_t>(parent)][static_cast<size_t>(i)];
      if (a != b) {
        throw EngineError("ERR_INVALID_ARG", who + "token " + std::to_string(a) + " at position " + std::to_string(i) + " differs from parent sequence " +
                                                 std::to_string(parent) + "'s token " + std::to_string(b) + " inside the shared prefix of " +
                                                 std::to_string(p) + " tokens");
      }
    }
    any = true;
  }
  return any;
}

void Session::checkUsable(const char* what) const {
  if (cancelled()) throw EngineError("ERR_ABORTED", std::string(what) + ": the session was cancelled");
  if (broken_) throw EngineError("ERR_STATE", std::string(what) + ": an earlier call failed part-way, so the activations are incomplete; start a new session");
}

template <typename F>
auto Session::guarded(F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (...) {
    broken_ = true;
    throw;
  }
}

void Session::keepLastTokens(int64_t layer) {
  if (!keepLast_) return;
  const size_t at = lastStates_.data.size();
  lastStates_.data.resize(at + static_cast<size_t>(sequenceCount_ * spec_.hiddenSize));
  backend_->copyLastTokenStates(lastStates_.data.data() + at);
  lastStates_.layers.push_back(layer);
}

void Session::embed(const TensorRef& table, const RunControl& ctl) {
  checkUsable("embed");
  if (embedded_) throw EngineError("ERR_STATE", "embed: the session is already embedded");
  expectShape(table, {spec_.vocabSize, spec_.hiddenSize});
  guarded([&] {
    try {
      backend_->embed(table, ctl);
    } catch (const EngineError& e) {
      if (e.code().rfind("ERR_NONFINITE", 0) == 0) throw EngineError(e.code(), std::string("embedding: ") + e.what());
      throw;
    }
    keepLastTokens(-1);
  });
  embedded_ = true;
}

void Session::validateLayer(const LayerRefs& w) const {
  const int64_t H = spec_.hiddenSize, I = spec_.intermediateSize, qd = spec_.qDim(), kvd = spec_.kvDim(), hd = spec_.headDim;
  std::map<std::string, std::vector<int64_t>> want = {
      {"input_layernorm", {H}}, {"post_attention_layernorm", {H}}, {"o_proj", {H, qd}},
      {"gate_proj", {I, H}},    {"up_proj", {I, H}},               {"down_proj", {H, I}},
  };
  if (spec_.numExperts > 0 && w.count("moe_router")) {  // Mixtral / Qwen3-MoE: router + experts
    const int64_t E = spec_.numExperts, Im = spec_.moeIntermediateSize;
    want.erase("gate_proj");
    want.erase("up_proj");
    want.erase("down_proj");
    want["moe_router"] = {E, H};
    for (int64_t e = 0; e < E; ++e) {
      const std::string s = std::to_string(e);
      want["expert_gate." + s] = {Im, H};
      want["expert_up." + s] = {Im, H};
      want["expert_down." + s] = {H, Im};
    }
  }
  if (spec_.fusedGateUp) {  // Phi-3: [gate; up] in one tensor
    want.erase("gate_proj");
    want.erase("up_proj");
    want["gate_up_proj"] = {2 * I, H};
  }
  if (spec_.gemmaNorms) {  // Gemma 2/3: norms before and after both attention and MLP
    want["pre_feedforward_layernorm"] = {H};
    want["post_feedforward_layernorm"] = {H};
  }
  if (spec_.postNorms) {  // OLMo 2: norms after attention and MLP, none before
    want.erase("input_layernorm");
    want["post_feedforward_layernorm"] = {H};
  }
  if (spec_.fusedQkv) {
    want["W_pack"] = {qd + 2 * kvd, H};
  } else {
    want["q_proj"] = {qd, H};
    want["k_proj"] = {kvd, H};
    want["v_proj"] = {kvd, H};
  }
  if (spec_.attentionBias) {
    want["q_bias"] = {qd};
    want["k_bias"] = {kvd};
    want["v_bias"] = {kvd};
  }
  if (spec_.outputBias) want["o_bias"] = {H};
  if (spec_.qkNorm) {  // per head (Qwen3), or over the whole projection (OLMo 2)
    want["q_norm"] = {spec_.postNorms ? qd : hd};
    want["k_norm"] = {spec_.postNorms ? kvd : hd};
  }
  for (const auto& [role, ref] : w) {
    if (!want.count(role)) {
      throw EngineError("ERR_UNEXPECTED_TENSOR", "tensor '" + ref.name + "' (role " + role +
                                                     ") is not used by this model's config; refusing to ignore it");
    }
  }
  for (const auto& [role, shape] : want) {
    auto it = w.find(role);
    if (it == w.end()) throw EngineError("ERR_MISSING_TENSOR", "layer weights lack the " + role + " tensor this model's config needs");
    expectShape(it->second, shape);
  }
}

LayerStats Session::forwardLayer(int64_t layer, const LayerRefs& weights, const RunControl& ctl, const LayerRefs* next) {
  checkUsable("forwardLayer");
  if (!embedded_) throw EngineError("ERR_STATE", "forwardLayer: call embed() first");
  validateLayer(weights);
  if (next) {
    try {
      validateLayer(*next);
    } catch (const EngineError&) {
      next = nullptr;  // this layer is fine; the bad one fails, naming its tensor, when it runs
    }
  }
  return guarded([&] {
    try {
      backend_->setLayerIndex(layer);
      LayerStats s = backend_->forwardLayerWithNext(weights, next, ctl);
      keepLastTokens(layer);
      mlpValid_ = !mlp_.empty();
      return s;
    } catch (const EngineError& e) {
      // The backend knows tensors and rows, not which layer it runs: name it here.
      if (e.code().rfind("ERR_NONFINITE", 0) == 0) throw EngineError(e.code(), "layer " + std::to_string(layer) + ": " + e.what());
      throw;
    }
  });
}

std::vector<float> Session::snapshot() const {
  checkUsable("snapshot");
  if (!embedded_) throw EngineError("ERR_STATE", "snapshot: call embed() or restore() first");
  std::vector<float> out(static_cast<size_t>(totalTokens_ * spec_.hiddenSize));
  backend_->copyResidual(out.data());
  return out;
}

void Session::restore(const float* data, int64_t count) {
  if (cancelled()) throw EngineError("ERR_ABORTED", "restore: the session was cancelled");
  if (count != totalTokens_ * spec_.hiddenSize) {
    throw EngineError("ERR_SHAPE", "restore: the snapshot holds " + std::to_string(count) + " floats, expected totalTokens x hiddenSize = " +
                                       std::to_string(totalTokens_) + " x " + std::to_string(spec_.hiddenSize));
  }
  backend_->setResidual(data);
  // A complete residual stream replaces whatever a failed call left behind.
  broken_ = false;
  embedded_ = true;
}

void Session::captureMlp(bool on) {
  checkUsable("captureMlp");
  if (on) {
    mlp_.assign(static_cast<size_t>(totalTokens_ * spec_.hiddenSize), 0.0f);
    backend_->setMlpCapture(mlp_.data());
  } else {
    backend_->setMlpCapture(nullptr);
    std::vector<float>().swap(mlp_);
  }
  mlpValid_ = false;
}

std::vector<float> Session::mlpOutput() const {
  checkUsable("mlpOutput");
  if (mlp_.empty() || !mlpValid_) throw EngineError("ERR_STATE", "mlpOutput: call captureMlp(true), then forwardLayer, first");
  return mlp_;
}

void Session::accumulateHealSums(const float* M, int64_t mCount, const float* hS, int64_t hCount, double* G, double* B, int64_t gCount) {
  checkUsable("accumulateHealSums");
  if (!embedded_) throw EngineError("ERR_STATE", "accumulateHealSums: call embed() first");
  const int64_t th = totalTokens_ * spec_.hiddenSize, hh = spec_.hiddenSize * spec_.hiddenSize;
  if (mCount != th || hCount != th) {
    throw EngineError("ERR_SHAPE", "accumulateHealSums: the MLP output and the residual snapshot must hold totalTokens x hiddenSize = " +
                                       std::to_string(th) + " floats, got " + std::to_string(mCount) + " and " + std::to_string(hCount));
  }
  if (gCount != hh) {
    throw EngineError("ERR_SHAPE", "accumulateHealSums: the sums must hold hiddenSize x hiddenSize = " + std::to_string(hh) +
                                       " doubles, got " + std::to_string(gCount));
  }
  backend_->accumulateHealSums(M, hS, G, B);
}

NllStats Session::nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) {
  checkUsable("nll");
  if (!embedded_) throw EngineError("ERR_STATE", "nll: call embed() first");
  expectShape(finalNorm, {spec_.hiddenSize});
  expectShape(lmHead, {spec_.vocabSize, spec_.hiddenSize});
  // nll only reads the residual stream, so a failure here does not break the session.
  return backend_->nll(finalNorm, lmHead, ctl);
}

TokenLogprobs Session::tokenLogprobs(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) {
  checkUsable("tokenLogprobs");
  if (!embedded_) throw EngineError("ERR_STATE", "tokenLogprobs: call embed() first");
  expectShape(finalNorm, {spec_.hiddenSize});
  expectShape(lmHead, {spec_.vocabSize, spec_.hiddenSize});
  return backend_->tokenLogprobs(finalNorm, lmHead, ctl);
}

Divergence Session::divergence(const ReferenceHead& ref, int64_t referenceCount, const TensorRef& finalNorm, const TensorRef& lmHead,
                               const RunControl& ctl) {
  checkUsable("divergence");
  if (!embedded_) throw EngineError("ERR_STATE", "divergence: call embed() first");
  if (ref.residual == nullptr || referenceCount != totalTokens_ * spec_.hiddenSize) {
    throw EngineError("ERR_SHAPE", "divergence: the reference residual stream holds " + std::to_string(referenceCount) +
                                       " floats, expected totalTokens x hiddenSize = " + std::to_string(totalTokens_) + " x " +
                                       std::to_string(spec_.hiddenSize) + " (the same sequences through a model of the same hidden size)");
  }
  expectShape(finalNorm, {spec_.hiddenSize});
  expectShape(lmHead, {spec_.vocabSize, spec_.hiddenSize});
  // The reference must predict over the same vocabulary: its lm_head is [vocabSize, hidden] too.
  expectShape(ref.finalNorm, {spec_.hiddenSize});
  expectShape(ref.lmHead, {spec_.vocabSize, spec_.hiddenSize});
  if (!(ref.rmsNormEps > 0) || !std::isfinite(ref.rmsNormEps)) {
    throw EngineError("ERR_INVALID_ARG", "divergence: the reference rmsNormEps must be a positive number");
  }
  return backend_->divergence(ref, finalNorm, lmHead, ctl);
}

}  // namespace shortgpt
