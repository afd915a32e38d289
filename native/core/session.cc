#include "core/session.h"

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
                 const BackendFactory& makeBackend)
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
    totalTokens_ += static_cast<int64_t>(sequences[s].size());
  }
  sequenceCount_ = static_cast<int64_t>(sequences.size());
  lastStates_.sequences = sequenceCount_;
  lastStates_.hiddenSize = spec.hiddenSize;
  backend_ = makeBackend(spec_, std::move(sequences));
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
  if (spec_.qkNorm) {
    want["q_norm"] = {hd};
    want["k_norm"] = {hd};
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
      LayerStats s = backend_->forwardLayerWithNext(weights, next, ctl);
      keepLastTokens(layer);
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

NllStats Session::nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) {
  checkUsable("nll");
  if (!embedded_) throw EngineError("ERR_STATE", "nll: call embed() first");
  expectShape(finalNorm, {spec_.hiddenSize});
  expectShape(lmHead, {spec_.vocabSize, spec_.hiddenSize});
  // nll only reads the residual stream, so a failure here does not break the session.
  return backend_->nll(finalNorm, lmHead, ctl);
}

}  // namespace shortgpt
