// Napi::ObjectWrap around core/session.h. Every JavaScript input is validated and copied into
// plain C++ values on the main thread; the work then runs on a libuv worker thread, touching no
// Node-API; results and errors (with a stable `code`) come back in OnOK/OnError on the main
// thread. A job holds a reference to its JS object and a shared_ptr to the Session, so neither
// dies while work is in flight, and dispose() resolves only after that work has finished.
#include "binding/session_binding.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "binding/coded_error.h"
#include "binding/cuda_binding.h"
#include "core/session.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm_bf16.h"

namespace shortgpt {

namespace {

Napi::Value rejected(Napi::Env env, const std::string& code, const std::string& message) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(codedError(env, code, message).Value());
  return d.Promise();
}

// --- argument parsing (main thread; throws EngineError ERR_INVALID_ARG naming the field) ---

double number(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw EngineError("ERR_INVALID_ARG", where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

double numberOr(const Napi::Object& o, const char* key, double fallback, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return number(o, key, where);
}

int64_t integer(const Napi::Object& o, const char* key, const std::string& where) {
  double d = number(o, key, where);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0) {
    throw EngineError("ERR_INVALID_ARG", where + "." + key + " must be an integer, got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

// An optional array of layer indices (spec.fullAttentionLayers, spec.noRopeLayers); absent = [].
std::vector<int64_t> layerIndices(const Napi::Object& o, const char* key, const std::string& where) {
  std::vector<int64_t> out;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw EngineError("ERR_INVALID_ARG", where + "." + key + " must be an array of layer indices");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d)) {
      throw EngineError("ERR_INVALID_ARG", where + "." + key + "[" + std::to_string(i) + "] must be a non-negative integer");
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

bool boolean(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) throw EngineError("ERR_INVALID_ARG", where + "." + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Object object(Napi::Value v, const std::string& where) {
  if (!v.IsObject()) throw EngineError("ERR_INVALID_ARG", where + " must be an object");
  return v.As<Napi::Object>();
}

ModelSpec parseSpec(Napi::Value value) {
  const std::string w = "spec";
  Napi::Object o = object(value, w);
  ModelSpec s;
  s.hiddenSize = integer(o, "hiddenSize", w);
  s.intermediateSize = integer(o, "intermediateSize", w);
  s.numHeads = integer(o, "numHeads", w);
  s.numKvHeads = integer(o, "numKvHeads", w);
  s.headDim = integer(o, "headDim", w);
  s.vocabSize = integer(o, "vocabSize", w);
  s.rmsNormEps = number(o, "rmsNormEps", w);
  s.ropeTheta = number(o, "ropeTheta", w);
  s.slidingWindow = o.Get("slidingWindow").IsNumber() ? integer(o, "slidingWindow", w) : 0;
  s.qkNorm = boolean(o, "qkNorm", w);
  s.attentionBias = boolean(o, "attentionBias", w);
  s.fusedQkv = boolean(o, "fusedQkv", w);
  s.outputBias = boolean(o, "outputBias", w);
  s.normalizedLmHead = boolean(o, "normalizedLmHead", w);
  // Granite's multipliers and SmolLM3's no-RoPE layers (absent: the plain decoder).
  s.embeddingMultiplier = numberOr(o, "embeddingMultiplier", 1.0, w);
  s.residualMultiplier = numberOr(o, "residualMultiplier", 1.0, w);
  s.attentionScale = numberOr(o, "attentionScale", 0.0, w);
  s.logitsScaling = numberOr(o, "logitsScaling", 1.0, w);
  s.postNorms = boolean(o, "postNorms", w);
  s.fusedGateUp = boolean(o, "fusedGateUp", w);
  s.gemmaNorms = boolean(o, "gemmaNorms", w);
  s.numExperts = o.Get("numExperts").IsNumber() ? integer(o, "numExperts", w) : 0;
  s.numExpertsPerTok = o.Get("numExpertsPerTok").IsNumber() ? integer(o, "numExpertsPerTok", w) : 0;
  s.moeIntermediateSize = o.Get("moeIntermediateSize").IsNumber() ? integer(o, "moeIntermediateSize", w) : 0;
  s.normTopkProb = boolean(o, "normTopkProb", w);
  if (s.numExperts < 0 || s.numExpertsPerTok < 0 || s.moeIntermediateSize < 0 || s.numExperts > 65536 ||
      (s.numExperts > 0 && (s.numExpertsPerTok < 1 || s.numExpertsPerTok > s.numExperts || s.moeIntermediateSize < 1))) {
    throw EngineError("ERR_INVALID_ARG", w + ".numExperts / numExpertsPerTok / moeIntermediateSize: need 1 <= numExpertsPerTok <= numExperts <= 65536 "
                                             "and moeIntermediateSize >= 1 (or numExperts 0)");
  }
  s.roundEmbeddingScale = boolean(o, "roundEmbeddingScale", w);
  s.attnLogitSoftcapping = numberOr(o, "attnLogitSoftcapping", 0.0, w);
  s.finalLogitSoftcapping = numberOr(o, "finalLogitSoftcapping", 0.0, w);
  s.localRopeTheta = numberOr(o, "localRopeTheta", 0.0, w);
  for (double v : {s.attnLogitSoftcapping, s.finalLogitSoftcapping, s.localRopeTheta}) {
    if (!std::isfinite(v) || v < 0) {
      throw EngineError("ERR_INVALID_ARG", w + ".attnLogitSoftcapping, finalLogitSoftcapping and localRopeTheta must be non-negative numbers");
    }
  }
  s.fullAttentionLayers = layerIndices(o, "fullAttentionLayers", w);
  s.rotaryDim = o.Get("rotaryDim").IsNumber() ? integer(o, "rotaryDim", w) : 0;
  if (s.rotaryDim < 0 || s.rotaryDim % 2 != 0 || s.rotaryDim > s.headDim) {
    throw EngineError("ERR_INVALID_ARG", w + ".rotaryDim must be an even number in [0, headDim]");
  }
  for (const char* key : {"embeddingMultiplier", "residualMultiplier", "logitsScaling"}) {
    const double v = numberOr(o, key, 1.0, w);
    if (!std::isfinite(v) || v <= 0) throw EngineError("ERR_INVALID_ARG", w + "." + key + " must be a positive number");
  }
  if (!std::isfinite(s.attentionScale) || s.attentionScale < 0) {
    throw EngineError("ERR_INVALID_ARG", w + ".attentionScale must be a non-negative number (0: 1/sqrt(headDim))");
  }
  s.noRopeLayers = layerIndices(o, "noRopeLayers", w);
  Napi::Value rsv = o.Get("ropeScaling");
  if (!rsv.IsUndefined() && !rsv.IsNull()) {
    const std::string rw = "spec.ropeScaling";
    Napi::Object rs = object(rsv, rw);
    Napi::Value t = rs.Get("type");
    std::string type = t.IsString() ? t.As<Napi::String>().Utf8Value() : "";
    if (type == "none") {
      s.ropeScaling.type = RopeScalingSpec::Type::None;
    } else if (type == "linear") {
      s.ropeScaling.type = RopeScalingSpec::Type::Linear;
      s.ropeScaling.factor = number(rs, "factor", rw);
    } else if (type == "llama3") {
      s.ropeScaling.type = RopeScalingSpec::Type::Llama3;
      s.ropeScaling.factor = number(rs, "factor", rw);
      s.ropeScaling.lowFreqFactor = numberOr(rs, "lowFreqFactor", 1.0, rw);
      s.ropeScaling.highFreqFactor = numberOr(rs, "highFreqFactor", 4.0, rw);
      s.ropeScaling.originalMaxPositionEmbeddings = numberOr(rs, "originalMaxPositionEmbeddings", 8192.0, rw);
    } else if (type == "longrope") {
      s.ropeScaling.type = RopeScalingSpec::Type::LongRope;
      s.ropeScaling.originalMaxPositionEmbeddings = number(rs, "originalMaxPositionEmbeddings", rw);
      s.ropeScaling.attentionFactor = number(rs, "attentionFactor", rw);
      const int64_t half = (s.rotaryDim > 0 ? s.rotaryDim : s.headDim) / 2;
      for (const char* key : {"shortFactor", "longFactor"}) {
        Napi::Value v = rs.Get(key);
        if (!v.IsArray() || v.As<Napi::Array>().Length() != static_cast<uint32_t>(half)) {
          throw EngineError("ERR_INVALID_ARG", rw + "." + key + " must be an array of rotaryDim / 2 = " + std::to_string(half) + " numbers");
        }
        std::vector<double>& out = std::string(key) == "shortFactor" ? s.ropeScaling.shortFactor : s.ropeScaling.longFactor;
        Napi::Array a = v.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) {
          Napi::Value x = a.Get(i);
          const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
          if (!(d > 0) || !std::isfinite(d)) throw EngineError("ERR_INVALID_ARG", rw + "." + key + " must hold positive numbers");
          out.push_back(d);
        }
      }
    } else {
      throw EngineError("ERR_INVALID_ARG", rw + ".type must be 'none', 'linear', 'llama3' or 'longrope', got '" + type + "'");
    }
  }
  return s;
}

TensorRef parseTensorRef(Napi::Value value, const std::string& fallbackName) {
  Napi::Object o = object(value, "tensor ref '" + fallbackName + "'");
  TensorRef t;
  Napi::Value name = o.Get("name");
  t.name = name.IsString() ? name.As<Napi::String>().Utf8Value() : fallbackName;
  const std::string w = "tensor ref '" + t.name + "'";
  Napi::Value file = o.Get("file");
  if (!file.IsString()) throw EngineError("ERR_INVALID_ARG", w + ".file must be a string");
  t.file = file.As<Napi::String>().Utf8Value();
  t.offset = integer(o, "offset", w);
  if (t.offset < 0) throw EngineError("ERR_INVALID_ARG", w + ".offset must be >= 0");
  Napi::Value dt = o.Get("dtype");
  if (!dt.IsString()) throw EngineError("ERR_INVALID_ARG", w + ".dtype must be a string");
  try {
    t.dtype = parseDType(dt.As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    throw EngineError("ERR_DTYPE", "tensor '" + t.name + "' in " + t.file + ": " + e.what());
  }
  Napi::Value shape = o.Get("shape");
  if (!shape.IsArray()) throw EngineError("ERR_INVALID_ARG", w + ".shape must be an array");
  Napi::Array arr = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (!d.IsNumber() || d.As<Napi::Number>().DoubleValue() < 0 || std::floor(d.As<Napi::Number>().DoubleValue()) != d.As<Napi::Number>().DoubleValue()) {
      throw EngineError("ERR_INVALID_ARG", w + ".shape must hold non-negative integers");
    }
    t.shape.push_back(d.As<Napi::Number>().Int64Value());
  }
  return t;
}

std::vector<std::vector<int32_t>> parseSequences(Napi::Value value) {
  if (!value.IsArray()) throw EngineError("ERR_INVALID_ARG", "sequences must be an array of Int32Array");
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<std::vector<int32_t>> out(arr.Length());
  for (uint32_t s = 0; s < arr.Length(); ++s) {
    Napi::Value v = arr.Get(s);
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      Napi::Int32Array ta = v.As<Napi::Int32Array>();
      out[s].assign(ta.Data(), ta.Data() + ta.ElementLength());
    } else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value id = a.Get(i);
        if (!id.IsNumber()) throw EngineError("ERR_INVALID_ARG", "sequences[" + std::to_string(s) + "][" + std::to_string(i) + "] is not a number");
        out[s].push_back(id.As<Napi::Number>().Int32Value());
      }
    } else {
      throw EngineError("ERR_INVALID_ARG", "sequences[" + std::to_string(s) + "] must be an Int32Array");
    }
  }
  return out;
}

// Session options.sharedPrefixes: {parents, lengths}, one entry per sequence each (Int32Array or
// number[]); parent -1 (length 0) for a sequence that stands alone. Absent: none.
std::vector<SharedPrefix> parseSharedPrefixes(Napi::Value value) {
  if (value.IsUndefined() || value.IsNull()) return {};
  if (!value.IsObject()) throw EngineError("ERR_INVALID_ARG", "Session options.sharedPrefixes must be an object {parents, lengths}");
  Napi::Object o = value.As<Napi::Object>();
  auto ints = [&](const char* key) {
    Napi::Value v = o.Get(key);
    std::vector<int64_t> out;
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      Napi::Int32Array ta = v.As<Napi::Int32Array>();
      out.assign(ta.Data(), ta.Data() + ta.ElementLength());
    } else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value x = a.Get(i);
        const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : 0.5;
        if (!(std::fabs(d) <= 2147483647.0) || d != std::floor(d)) {
          throw EngineError("ERR_INVALID_ARG", std::string("Session options.sharedPrefixes.") + key + "[" + std::to_string(i) + "] is not an integer");
        }
        out.push_back(static_cast<int64_t>(x.As<Napi::Number>().DoubleValue()));
      }
    } else {
      throw EngineError("ERR_INVALID_ARG", std::string("Session options.sharedPrefixes.") + key + " must be an Int32Array or an array of integers");
    }
    return out;
  };
  const std::vector<int64_t> parents = ints("parents"), lengths = ints("lengths");
  if (parents.size() != lengths.size()) {
    throw EngineError("ERR_INVALID_ARG", "Session options.sharedPrefixes: parents has " + std::to_string(parents.size()) +
                                             " entries but lengths has " + std::to_string(lengths.size()));
  }
  std::vector<SharedPrefix> out(parents.size());
  for (size_t i = 0; i < parents.size(); ++i) out[i] = {parents[i], lengths[i]};
  return out;
}

// The (norm, lm_head) tensor references nll and tokenLogprobs take as info[0], info[1]; false,
// with *out the rejected promise, when either is invalid.
bool parseHead(const Napi::CallbackInfo& info, TensorRef* norm, TensorRef* head, Napi::Value* out) {
  try {
    *norm = parseTensorRef(info[0], "norm");
    *head = parseTensorRef(info[1], "lm_head");
  } catch (const EngineError& e) {
    *out = rejected(info.Env(), e.code(), e.what());
    return false;
  }
  return true;
}

void setNllStats(Napi::Object& o, const NllStats& s) {
  o.Set("sumNll", s.sumNll);
  o.Set("predictions", static_cast<double>(s.predictions));
  o.Set("logitsSum", s.logitsSum);
}

Napi::Object statsToJs(Napi::Env env, const LayerStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("tokens", static_cast<double>(s.tokens));
  o.Set("sumCos", s.sumCos);
  o.Set("nanCount", static_cast<double>(s.nanCount));
  o.Set("sumAngular", s.sumAngular);
  o.Set("sumRelMag", s.sumRelMag);
  // Per-sequence sums as Float64Arrays (absent when the backend keeps none, e.g. CUDA).
  const LayerStats::PerSequence& ps = s.perSequence;
  if (!ps.tokens.empty()) {
    Napi::Object p = Napi::Object::New(env);
    auto array = [&](const std::vector<double>& v) {
      Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      return a;
    };
    p.Set("tokens", array(ps.tokens));
    p.Set("sumCos", array(ps.sumCos));
    p.Set("nanCount", array(ps.nanCount));
    p.Set("sumAngular", array(ps.sumAngular));
    p.Set("sumRelMag", array(ps.sumRelMag));
    o.Set("perSequence", p);
  }
  return o;
}

// What the environment's cleanup hook needs when Node exits with work in flight: the session
// to cancel, and a way to wait until the worker thread has stopped touching it (at most one
// batch of sequences), so process exit never races a running layer.
struct Lifeline {
  std::shared_ptr<Session> session;
  std::mutex mutex;
  std::condition_variable idle;
  bool running = false;

  void begin() {
    std::lock_guard<std::mutex> lock(mutex);
    running = true;
  }
  void end() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      running = false;
    }
    idle.notify_all();
  }
  void cancelAndWait() {
    std::unique_lock<std::mutex> lock(mutex);
    if (session) session->cancel();
    idle.wait(lock, [this] { return !running; });
  }
};

void onEnvCleanup(void* arg) { static_cast<std::shared_ptr<Lifeline>*>(arg)->get()->cancelAndWait(); }

struct ProgressEvent {
  int64_t layer, done, total;
};

}  // namespace

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Session",
                       {
                           InstanceMethod<&SessionWrap::embed>("embed"),
                           InstanceMethod<&SessionWrap::forwardLayer>("forwardLayer"),
                           InstanceMethod<&SessionWrap::nll>("nll"),
                           InstanceMethod<&SessionWrap::tokenLogprobs>("tokenLogprobs"),
                           InstanceMethod<&SessionWrap::divergence>("divergence"),
                           InstanceMethod<&SessionWrap::lastTokenStates>("lastTokenStates"),
                           InstanceMethod<&SessionWrap::snapshot>("snapshot"),
                           InstanceMethod<&SessionWrap::restore>("restore"),
                           InstanceMethod<&SessionWrap::captureMlp>("captureMlp"),
                           InstanceMethod<&SessionWrap::mlpOutput>("mlpOutput"),
                           InstanceMethod<&SessionWrap::accumulateHealSums>("accumulateHealSums"),
                           InstanceMethod<&SessionWrap::cancel>("cancel"),
                           InstanceMethod<&SessionWrap::dispose>("dispose"),
                           InstanceAccessor<&SessionWrap::totalTokens>("totalTokens"),
                           InstanceAccessor<&SessionWrap::sequenceCount>("sequenceCount"),
                       });
  }

  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
    Napi::Env env = info.Env();
    try {
      Napi::Object o = object(info[0], "Session options");
      ModelSpec spec = parseSpec(o.Get("spec"));
      auto seqs = parseSequences(o.Get("sequences"));
      int64_t threads = o.Get("threads").IsNumber() ? integer(o, "threads", "Session options") : 1;
      if (threads < 1 || threads > 1024) throw EngineError("ERR_INVALID_ARG", "Session options.threads must be in [1, 1024]");
      bool keep = boolean(o, "keepLastTokenStates", "Session options");
      const int th = static_cast<int>(threads);
      // `device: 'cuda'` (+ `cuda: {...}`) selects the CUDA backend; the CPU is the default.
      CudaBackendOptions cudaOptions;
      const bool cuda = parseCudaSessionOptions(o, &cudaOptions);
      // `precision: 'bf16'` is the CPU backend's fast mode (cpu/gemm_bf16.h); never a silent fallback.
      CpuPrecision precision = CpuPrecision::F32;
      if (!o.Get("precision").IsUndefined()) {
        const Napi::Value p = o.Get("precision");
        const std::string name = p.IsString() ? p.As<Napi::String>().Utf8Value() : "";
        if (name != "f32" && name != "bf16") throw EngineError("ERR_INVALID_ARG", "Session options.precision must be 'f32' or 'bf16'");
        if (name == "bf16") {
          if (cuda) {
            throw EngineError("ERR_INVALID_ARG", "Session options.precision 'bf16' is the CPU backend's fast mode; on CUDA "
                                                 "choose the GEMM with cuda.f32Gemm");
          }
          if (!bf16KernelAvailable(Bf16Kernel::Auto)) {
            throw EngineError("ERR_PRECISION_UNAVAILABLE", "precision 'bf16' needs a BF16 GEMM kernel (AMX-BF16 or AVX512-BF16): " +
                                                               bf16Unavailable() + "; use precision 'f32'");
          }
          precision = CpuPrecision::Bf16;
        }
      }
      BackendFactory factory = [th, precision](const ModelSpec& s, std::vector<std::vector<int32_t>> q) {
        return createCpuBackend(s, std::move(q), th, precision);
      };
      if (cuda) {
        factory = [cudaOptions](const ModelSpec& s, std::vector<std::vector<int32_t>> q) {
          return createCudaBackend(s, std::move(q), cudaOptions);
        };
      }
      session_ = std::make_shared<Session>(spec, std::move(seqs), keep, factory, parseSharedPrefixes(o.Get("sharedPrefixes")));
      lifeline_ = new std::shared_ptr<Lifeline>(std::make_shared<Lifeline>());
      (*lifeline_)->session = session_;
      napi_add_env_cleanup_hook(env, onEnvCleanup, lifeline_);
    } catch (const EngineError& e) {
      throwCoded(env, e.code(), e.what());
    } catch (const std::bad_alloc&) {
      throwCoded(env, "ERR_OUT_OF_MEMORY", "out of memory allocating the session's activations");
    }
  }

  ~SessionWrap() override {
    if (lifeline_) {
      napi_remove_env_cleanup_hook(Env(), onEnvCleanup, lifeline_);
      delete lifeline_;
    }
  }

  // Called by a job on the main thread when it has finished.
  void jobFinished() {
    busy_ = false;
    if (disposed_) {
      releaseSession();
      for (auto& d : disposeWaiters_) d.Resolve(Env().Undefined());
      disposeWaiters_.clear();
    }
  }

 private:
  class Job;

  // Checks the session can take new work; returns an error promise when it cannot.
  bool unavailable(Napi::Env env, Napi::Value* out) {
    if (disposed_) {
      *out = rejected(env, "ERR_DISPOSED", "the session has been disposed");
      return true;
    }
    if (busy_) {
      *out = rejected(env, "ERR_BUSY", "the session is already running an operation; await it first");
      return true;
    }
    return false;
  }

  Napi::Value embed(const Napi::CallbackInfo& info);
  Napi::Value forwardLayer(const Napi::CallbackInfo& info);
  Napi::Value nll(const Napi::CallbackInfo& info);
  Napi::Value tokenLogprobs(const Napi::CallbackInfo& info);
  // nll and tokenLogprobs: (norm, lm_head) parsed here, `pass` run as a job, `toJs` of its result.
  template <typename Result, typename ToJs>
  Napi::Value headPass(const Napi::CallbackInfo& info, Result (Session::*pass)(const TensorRef&, const TensorRef&, const RunControl&),
                       ToJs toJs);
  Napi::Value divergence(const Napi::CallbackInfo& info);

  Napi::Value lastTokenStates(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (disposed_) throwCoded(env, "ERR_DISPOSED", "the session has been disposed");
    if (busy_) throwCoded(env, "ERR_BUSY", "the session is running an operation; await it first");
    const LastTokenStates& s = session_->lastTokenStates();
    Napi::Object o = Napi::Object::New(env);
    o.Set("sequences", static_cast<double>(s.sequences));
    o.Set("hiddenSize", static_cast<double>(s.hiddenSize));
    Napi::Array layers = Napi::Array::New(env, s.layers.size());
    for (size_t i = 0; i < s.layers.size(); ++i) layers.Set(static_cast<uint32_t>(i), static_cast<double>(s.layers[i]));
    o.Set("layers", layers);
    Napi::Float32Array data = Napi::Float32Array::New(env, s.data.size());
    std::copy(s.data.begin(), s.data.end(), data.Data());
    o.Set("data", data);
    return o;
  }

  // snapshot/restore are plain copies of [totalTokens, hidden] f32, done synchronously.
  void checkIdle(Napi::Env env) {
    if (disposed_) throwCoded(env, "ERR_DISPOSED", "the session has been disposed");
    if (busy_) throwCoded(env, "ERR_BUSY", "the session is running an operation; await it first");
  }

  // A copy out of the idle session (snapshot, mlpOutput) as a new Float32Array.
  template <typename Get>
  Napi::Value float32Copy(Napi::Env env, Get get, const char* outOfMemory) {
    checkIdle(env);
    try {
      std::vector<float> data = get();
      Napi::Float32Array out = Napi::Float32Array::New(env, data.size());
      std::copy(data.begin(), data.end(), out.Data());
      return out;
    } catch (const EngineError& e) {
      throwCoded(env, e.code(), e.what());
    } catch (const std::bad_alloc&) {
      throwCoded(env, "ERR_OUT_OF_MEMORY", outOfMemory);
    }
  }

  Napi::Value snapshot(const Napi::CallbackInfo& info) {
    return float32Copy(info.Env(), [this] { return session_->snapshot(); }, "out of memory copying the residual stream");
  }

  Napi::Value restore(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throwCoded(env, "ERR_INVALID_ARG", "restore: expected a Float32Array from snapshot()");
    }
    Napi::Float32Array data = info[0].As<Napi::Float32Array>();
    try {
      session_->restore(data.Data(), static_cast<int64_t>(data.ElementLength()));
    } catch (const EngineError& e) {
      throwCoded(env, e.code(), e.what());
    }
    return env.Undefined();
  }

  // --heal (issue 13): captureMlp/mlpOutput are synchronous like snapshot; the sums run as a job.
  Napi::Value captureMlp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (!info[0].IsBoolean()) throwCoded(env, "ERR_INVALID_ARG", "captureMlp: expected a boolean");
    try {
      session_->captureMlp(info[0].As<Napi::Boolean>().Value());
    } catch (const EngineError& e) {
      throwCoded(env, e.code(), e.what());
    } catch (const std::bad_alloc&) {
      throwCoded(env, "ERR_OUT_OF_MEMORY", "out of memory allocating the MLP-output capture buffer (tokens x hidden f32)");
    }
    return env.Undefined();
  }

  Napi::Value mlpOutput(const Napi::CallbackInfo& info) {
    return float32Copy(info.Env(), [this] { return session_->mlpOutput(); }, "out of memory copying the MLP output");
  }

  Napi::Value accumulateHealSums(const Napi::CallbackInfo& info);

  Napi::Value cancel(const Napi::CallbackInfo& info) {
    if (session_) session_->cancel();
    return info.Env().Undefined();
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto d = Napi::Promise::Deferred::New(env);
    disposed_ = true;
    if (busy_) {
      disposeWaiters_.push_back(d);
    } else {
      releaseSession();
      d.Resolve(env.Undefined());
    }
    return d.Promise();
  }

  Napi::Value totalTokens(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), session_ ? static_cast<double>(session_->totalTokens()) : 0);
  }
  Napi::Value sequenceCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), session_ ? static_cast<double>(session_->sequenceCount()) : 0);
  }

  void releaseSession() {
    session_.reset();
    if (lifeline_) {
      std::lock_guard<std::mutex> lock((*lifeline_)->mutex);
      (*lifeline_)->session.reset();
    }
  }

  std::shared_ptr<Session> session_;
  std::shared_ptr<Lifeline>* lifeline_ = nullptr;  // owned; the cleanup hook's argument
  bool busy_ = false;
  bool disposed_ = false;
  std::vector<Napi::Promise::Deferred> disposeWaiters_;
};

// One async operation on a session: `work` runs off the main thread, `result` builds the
// resolved value on it.
class SessionWrap::Job : public Napi::AsyncWorker {
 public:
  Job(SessionWrap* owner, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(owner->Env(), "shortgpt.session"),
        owner_(owner),
        deferred_(Napi::Promise::Deferred::New(owner->Env())),
        work_(std::move(work)),
        result_(std::move(result)),
        lifeline_(*owner->lifeline_) {
    owner_->Ref();
    owner_->busy_ = true;
    lifeline_->begin();
  }

  void setProgress(Napi::ThreadSafeFunction tsfn) {
    progress_ = tsfn;
    hasProgress_ = true;
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  // Queues the work; the promise it settles.
  Napi::Promise start() {
    Queue();
    return promise();
  }

  void Execute() override {
    try {
      work_();
    } catch (const EngineError& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_OUT_OF_MEMORY";
      SetError("out of memory (the activations, one layer's packed weights and scratch must fit in RAM)");
    } catch (const std::exception& e) {
      code_ = "ERR_INTERNAL";
      SetError(std::string("internal error: ") + e.what());
    } catch (...) {
      code_ = "ERR_INTERNAL";
      SetError("internal error: unknown exception");
    }
    if (hasProgress_) progress_.Release();
    lifeline_->end();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value v = result_(env);
    // Settle this job's promise before dispose() waiters, so their reactions run after ours.
    deferred_.Resolve(v);
    finish();
  }

  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    e.Value().Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(e.Value());
    finish();
  }

 private:
  void finish() {
    owner_->jobFinished();
    owner_->Unref();
  }

  SessionWrap* owner_;
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  Napi::ThreadSafeFunction progress_;
  bool hasProgress_ = false;
  std::string code_ = "ERR_INTERNAL";
  std::shared_ptr<Lifeline> lifeline_;
};

static RunControl controlFor(const std::shared_ptr<Session>& s) {
  RunControl ctl;
  Session* raw = s.get();
  ctl.cancelled = [raw] { return raw->cancelled(); };
  return ctl;
}

Napi::Value SessionWrap::embed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value out;
  if (unavailable(env, &out)) return out;
  TensorRef table;
  try {
    table = parseTensorRef(info[0], "embed_tokens");
  } catch (const EngineError& e) {
    return rejected(env, e.code(), e.what());
  }
  auto session = session_;
  auto* job = new Job(this, [session, table] { session->embed(table, controlFor(session)); },
                      [](Napi::Env e) { return e.Undefined(); });
  return job->start();
}

Napi::Value SessionWrap::forwardLayer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value out;
  if (unavailable(env, &out)) return out;
  int64_t layer = 0;
  LayerRefs refs;
  // info[3]: the next layer's weights (same shape as info[1]), a prefetch hint; absent = none.
  auto next = std::make_shared<LayerRefs>();
  bool hasNext = false;
  try {
    if (!info[0].IsNumber()) throw EngineError("ERR_INVALID_ARG", "forwardLayer: layer index must be a number");
    layer = info[0].As<Napi::Number>().Int64Value();
    auto parseLayer = [](const Napi::Value& v, const char* what, LayerRefs& out) {
      Napi::Object w = object(v, what);
      Napi::Array keys = w.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string role = keys.Get(i).As<Napi::String>().Utf8Value();
        out[role] = parseTensorRef(w.Get(role), role);
      }
    };
    parseLayer(info[1], "forwardLayer weights", refs);
    if (!info[2].IsUndefined() && !info[2].IsFunction()) throw EngineError("ERR_INVALID_ARG", "forwardLayer: onProgress must be a function");
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      parseLayer(info[3], "forwardLayer next-layer weights", *next);
      hasNext = true;
    }
  } catch (const EngineError& e) {
    return rejected(env, e.code(), e.what());
  }
  auto session = session_;
  auto stats = std::make_shared<LayerStats>();
  RunControl ctl = controlFor(session);
  const bool hasProgress = info[2].IsFunction();
  Napi::ThreadSafeFunction fn;
  if (hasProgress) {
    // Progress events travel through the thread-safe function; the JS callback runs on the
    // main thread, and an exception it throws is swallowed rather than failing the layer.
    fn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "shortgpt.progress", 0, 1);
    ctl.progress = [fn, layer](int64_t done, int64_t total) mutable {
      auto* ev = new ProgressEvent{layer, done, total};
      napi_status st = fn.NonBlockingCall(ev, [](Napi::Env e, Napi::Function cb, ProgressEvent* p) {
        if (e != nullptr && cb != nullptr) {
          try {
            cb.Call({Napi::Number::New(e, static_cast<double>(p->layer)), Napi::Number::New(e, static_cast<double>(p->done)),
                     Napi::Number::New(e, static_cast<double>(p->total))});
          } catch (const Napi::Error&) {
          }
        }
        delete p;
      });
      if (st != napi_ok) delete ev;
    };
  }
  auto* job = new Job(this, [session, refs, layer, stats, ctl, next, hasNext] {
                        *stats = session->forwardLayer(layer, refs, ctl, hasNext ? next.get() : nullptr);
                      },
                      [stats](Napi::Env e) -> Napi::Value { return statsToJs(e, *stats); });
  if (hasProgress) job->setProgress(fn);
  return job->start();
}

Napi::Value SessionWrap::accumulateHealSums(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value out;
  if (unavailable(env, &out)) return out;
  auto isArray = [&](size_t i, napi_typedarray_type type) {
    return info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == type;
  };
  if (!isArray(0, napi_float32_array) || !isArray(1, napi_float32_array) || !isArray(2, napi_float64_array) || !isArray(3, napi_float64_array)) {
    return rejected(env, "ERR_INVALID_ARG", "accumulateHealSums: expected (mlpOutput: Float32Array, residualBefore: Float32Array, G: Float64Array, B: Float64Array)");
  }
  Napi::Float32Array m = info[0].As<Napi::Float32Array>(), h = info[1].As<Napi::Float32Array>();
  Napi::Float64Array g = info[2].As<Napi::Float64Array>(), b = info[3].As<Napi::Float64Array>();
  if (g.ElementLength() != b.ElementLength()) return rejected(env, "ERR_SHAPE", "accumulateHealSums: G and B must have the same length");
  // The arrays stay referenced (so not collected) until the job settles on the main thread.
  auto refs = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
  for (size_t i = 0; i < 4; ++i) refs->push_back(Napi::Persistent(info[i]));
  const float* mp = m.Data();
  const float* hp = h.Data();
  double* gp = g.Data();
  double* bp = b.Data();
  const int64_t mc = static_cast<int64_t>(m.ElementLength()), hc = static_cast<int64_t>(h.ElementLength()), gc = static_cast<int64_t>(g.ElementLength());
  auto session = session_;
  auto* job = new Job(this, [session, mp, mc, hp, hc, gp, bp, gc] { session->accumulateHealSums(mp, mc, hp, hc, gp, bp, gc); },
                      [refs](Napi::Env e) { return e.Undefined(); });
  return job->start();
}

template <typename Result, typename ToJs>
Napi::Value SessionWrap::headPass(const Napi::CallbackInfo& info,
                                  Result (Session::*pass)(const TensorRef&, const TensorRef&, const RunControl&), ToJs toJs) {
  Napi::Env env = info.Env();
  Napi::Value out;
  if (unavailable(env, &out)) return out;
  TensorRef norm, head;
  if (!parseHead(info, &norm, &head, &out)) return out;
  auto session = session_;
  auto res = std::make_shared<Result>();
  auto* job = new Job(this, [session, pass, norm, head, res] { *res = ((*session).*pass)(norm, head, controlFor(session)); },
                      [res, toJs](Napi::Env e) -> Napi::Value { return toJs(e, *res); });
  return job->start();
}

Napi::Value SessionWrap::nll(const Napi::CallbackInfo& info) {
  return headPass(info, &Session::nll, [](Napi::Env e, const NllStats& res) {
    Napi::Object o = Napi::Object::New(e);
    setNllStats(o, res);
    return o;
  });
}

template <typename T, typename Array>
static Array typedCopy(Napi::Env env, const std::vector<T>& v) {
  Array a = Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Value SessionWrap::tokenLogprobs(const Napi::CallbackInfo& info) {
  return headPass(info, &Session::tokenLogprobs, [](Napi::Env e, const TokenLogprobs& res) {
    Napi::Object o = Napi::Object::New(e);
    o.Set("logprob", typedCopy<double, Napi::Float64Array>(e, res.logprob));
    o.Set("argmax", typedCopy<int32_t, Napi::Int32Array>(e, res.argmax));
    o.Set("targetIsArgmax", typedCopy<uint8_t, Napi::Uint8Array>(e, res.targetIsArgmax));
    setNllStats(o, res.stats);
    return o;
  });
}

// divergence(reference, finalNorm, lmHead): reference = {residual: Float32Array, finalNorm,
// lmHead, rmsNormEps, normalizedLmHead?}. The residual is not copied (it is as large as the
// session's own): a persistent reference keeps it alive until the job is destroyed on the main
// thread, and the worker reads it in place.
Napi::Value SessionWrap::divergence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value out;
  if (unavailable(env, &out)) return out;
  auto ref = std::make_shared<ReferenceHead>();
  std::shared_ptr<Napi::Reference<Napi::Float32Array>> keep;
  int64_t count = 0;
  TensorRef norm, head;
  try {
    const std::string w = "divergence reference";
    Napi::Object o = object(info[0], w);
    Napi::Value r = o.Get("residual");
    if (!r.IsTypedArray() || r.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw EngineError("ERR_INVALID_ARG", w + ".residual must be a Float32Array (the reference session's snapshot())");
    }
    Napi::Float32Array residual = r.As<Napi::Float32Array>();
    ref->finalNorm = parseTensorRef(o.Get("finalNorm"), "reference norm");
    ref->lmHead = parseTensorRef(o.Get("lmHead"), "reference lm_head");
    ref->rmsNormEps = number(o, "rmsNormEps", w);
    ref->normalizedLmHead = boolean(o, "normalizedLmHead", w);
    norm = parseTensorRef(info[1], "norm");
    head = parseTensorRef(info[2], "lm_head");
    ref->residual = residual.Data();
    count = static_cast<int64_t>(residual.ElementLength());
    keep = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(residual));
  } catch (const EngineError& e) {
    return rejected(env, e.code(), e.what());
  }
  auto session = session_;
  auto res = std::make_shared<Divergence>();
  auto* job = new Job(this, [session, ref, count, norm, head, res] { *res = session->divergence(*ref, count, norm, head, controlFor(session)); },
                      [res, keep](Napi::Env e) -> Napi::Value {
                        Napi::Object o = Napi::Object::New(e);
                        o.Set("kl", typedCopy<double, Napi::Float64Array>(e, res->kl));
                        o.Set("referenceLogprob", typedCopy<double, Napi::Float64Array>(e, res->referenceLogprob));
                        o.Set("logprob", typedCopy<double, Napi::Float64Array>(e, res->logprob));
                        o.Set("referenceArgmax", typedCopy<int32_t, Napi::Int32Array>(e, res->referenceArgmax));
                        o.Set("argmax", typedCopy<int32_t, Napi::Int32Array>(e, res->argmax));
                        return o;
                      });
  return job->start();
}

void registerSessionExports(Napi::Env env, Napi::Object exports) {
  exports.Set("Session", SessionWrap::define(env));
}

}  // namespace shortgpt
