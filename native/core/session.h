// A Session holds the residual streams of a set of calibration sequences on one backend and
// drives the layer-streaming forward pass: embed, then one decoder layer at a time, then
// optionally the final norm + lm_head for perplexity. It validates every spec, token and tensor
// shape before the backend touches memory, enforces call order, and owns cancellation. It knows
// nothing about devices: the Backend does the compute.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

using BackendFactory = std::function<std::unique_ptr<Backend>(const ModelSpec&, std::vector<std::vector<int32_t>>)>;

// Each sequence's last-token hidden state after the embedding (entry 0) and after every
// forwardLayer call (in call order), when the session was asked to keep them.
struct LastTokenStates {
  int64_t sequences = 0;
  int64_t hiddenSize = 0;
  std::vector<int64_t> layers;  // the layer each entry follows; -1 for the embedding
  std::vector<float> data;      // [entries, sequences, hidden]
};

class Session {
 public:
  // Throws EngineError (ERR_INVALID_ARG, ERR_TOKEN_RANGE) for an impossible spec or tokens.
  // `prefixes` (empty, or one per sequence): shared prefixes (backend.h SharedPrefix); the
  // sequences are given whole and validated against their parents (ERR_INVALID_ARG naming the
  // sequence), then stripped, so totalTokens() counts every computed row once.
  Session(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences, bool keepLastTokenStates,
          const BackendFactory& makeBackend, const std::vector<SharedPrefix>& prefixes = {});

  void embed(const TensorRef& table, const RunControl& ctl);
  // `next`: the weights of the layer the caller will run after this one (null: none), handed to
  // the backend for prefetching. An invalid `next` is dropped here and reported when it runs.
  LayerStats forwardLayer(int64_t layer, const LayerRefs& weights, const RunControl& ctl, const LayerRefs* next = nullptr);
  NllStats nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl);
  TokenLogprobs tokenLogprobs(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl);
  // `referenceCount`: the floats at ref.residual (must be totalTokens x hiddenSize).
  Divergence divergence(const ReferenceHead& ref, int64_t referenceCount, const TensorRef& finalNorm, const TensorRef& lmHead,
                        const RunControl& ctl);
  const LastTokenStates& lastTokenStates() const { return lastStates_; }

  // The residual stream [totalTokens, hidden] f32 (after the embedding or the last layer run),
  // and putting one back: restore() stands in for embed() plus the layers that produced it.
  std::vector<float> snapshot() const;
  void restore(const float* data, int64_t count);

  // Healing (issue 13): with captureMlp(true) every later forwardLayer keeps its MLP output
  // (down_proj's output, before the residual add) for all tokens, read by mlpOutput(); off frees
  // it. accumulateHealSums adds MᵀM to G and Mᵀ(h - hS + M) to B, h the current residual stream.
  void captureMlp(bool on);
  std::vector<float> mlpOutput() const;
  void accumulateHealSums(const float* M, int64_t mCount, const float* hS, int64_t hCount, double* G, double* B, int64_t gCount);

  // Asks work in flight to stop at its next batch boundary (it throws ERR_ABORTED). Sticky: a
  // cancelled session's activations are incomplete, so every later call fails too.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  const ModelSpec& spec() const { return spec_; }
  int64_t totalTokens() const { return totalTokens_; }
  int64_t sequenceCount() const { return sequenceCount_; }

  // Throws ERR_SHAPE / ERR_MISSING_TENSOR / ERR_UNEXPECTED_TENSOR naming the tensor at fault.
  void validateLayer(const LayerRefs& weights) const;

 private:
  void checkUsable(const char* what) const;
  // Validates `links` against the whole sequences; true when some sequence has a parent.
  static bool checkSharedPrefixes(const std::vector<std::vector<int32_t>>& seqs, const std::vector<SharedPrefix>& links);
  void keepLastTokens(int64_t layer);
  // Runs fn; an exception part-way leaves the activations inconsistent, so the session is
  // marked broken and refuses further work.
  template <typename F>
  auto guarded(F&& fn) -> decltype(fn());

  ModelSpec spec_;
  int64_t totalTokens_ = 0;
  int64_t sequenceCount_ = 0;
  bool keepLast_ = false;
  bool embedded_ = false;
  bool broken_ = false;
  std::atomic<bool> cancelled_{false};
  LastTokenStates lastStates_;
  std::vector<float> mlp_;  // --heal: the last layer's MLP output, [totalTokens, hidden] f32
  bool mlpValid_ = false;   // a layer has run since captureMlp(true)
  std::unique_ptr<Backend> backend_;
};

}  // namespace shortgpt
