#include "binding/cuda_binding.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "core/finite.h"
#include "core/weights_io.h"
#include "cuda/cuda_abi.h"

namespace shortgpt {
namespace {

struct CudaLibrary {
  const ShortGptCudaApi* api = nullptr;
  std::string path;
  std::string error;  // why api is null
};

// The folder of this addon: libshortgpt_cuda.so is built (and prebuilt) beside it.
std::string addonDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&addonDir), &info) && info.dli_fname) {
    std::string p = info.dli_fname;
    const size_t slash = p.rfind('/');
    if (slash != std::string::npos) return p.substr(0, slash);
  }
  return ".";
}

const CudaLibrary& cudaLibrary() {
  static CudaLibrary lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("SHORTGPT_CUDA_LIB");
    lib.path = env && *env ? env : addonDir() + "/libshortgpt_cuda.so";
    void* h = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      lib.error = "this build has no CUDA backend: " + lib.path + " could not be loaded (" + (e ? e : "unknown") +
                  "). Build with nvcc on PATH (SHORTGPT_CUDA=on npx cmake-js compile --out build).";
      return;
    }
    auto fn = reinterpret_cast<ShortGptCudaApiFn>(dlsym(h, SHORTGPT_CUDA_API_SYMBOL));
    const ShortGptCudaApi* api = fn ? fn() : nullptr;
    if (!api) {
      lib.error = lib.path + " does not export " SHORTGPT_CUDA_API_SYMBOL;
    } else if (api->abiVersion != SHORTGPT_CUDA_ABI_VERSION || api->structSize < sizeof(ShortGptCudaApi)) {
      lib.error = lib.path + " has CUDA ABI version " + std::to_string(api->abiVersion) + ", this addon needs " +
                  std::to_string(SHORTGPT_CUDA_ABI_VERSION) + ": rebuild both together";
    } else {
      lib.api = api;
    }
  });
  return lib;
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  const CudaLibrary& lib = cudaLibrary();
  out.Set("compiled", lib.api != nullptr);
  out.Set("library", lib.path);
  if (!lib.api) {
    out.Set("usable", false);
    out.Set("reason", lib.error);
    return out;
  }
  out.Set("build", lib.api->buildInfo());
  ShortGptCudaProbe p;
  lib.api->probe(&p);
  out.Set("usable", p.usable != 0);
  out.Set("reason", std::string(p.reason));
  out.Set("driverVersion", p.driverVersion);
  out.Set("runtimeVersion", p.runtimeVersion);
  if (p.cublasLibrary[0]) out.Set("cublas", std::string(p.cublasLibrary));
  Napi::Array devices = Napi::Array::New(env);
  for (int d = 0; d < p.deviceCount && d < SHORTGPT_CUDA_MAX_DEVICES; ++d) {
    const ShortGptCudaDevice& dev = p.devices[d];
    Napi::Object o = Napi::Object::New(env);
    o.Set("ordinal", dev.ordinal);
    o.Set("name", std::string(dev.name));
    o.Set("computeCapability", std::to_string(dev.computeMajor) + "." + std::to_string(dev.computeMinor));
    o.Set("multiprocessors", dev.multiprocessors);
    o.Set("totalBytes", static_cast<double>(dev.totalBytes));
    // No freeBytes: asking it creates a CUDA context on the device, and the probe must not do
    // that on every GPU of the machine (the C ABI's deviceMemory asks one device when needed).
    devices.Set(static_cast<uint32_t>(d), o);
  }
  out.Set("devices", devices);
  return out;
}

int sgDtype(DType t) {
  switch (t) {
    case DType::F32: return SG_DTYPE_F32;
    case DType::F16: return SG_DTYPE_F16;
    case DType::BF16: return SG_DTYPE_BF16;
  }
  return SG_DTYPE_F32;
}

// A tensor's bytes in host memory, read with pread (weights never pass through JavaScript).
struct HostTensor {
  std::vector<uint8_t> bytes;
  ShortGptCudaTensor view{nullptr, SG_DTYPE_F32, 0, 1};
};

HostTensor readHost(const TensorRef& ref) {
  HostTensor t;
  t.bytes = readTensorBytes(ref);
  t.view.data = t.bytes.data();
  t.view.dtype = sgDtype(ref.dtype);
  t.view.rows = ref.shape.empty() ? 1 : ref.shape[0];
  t.view.cols = ref.shape.size() >= 2 ? ref.shape[1] : 1;
  return t;
}

// Identity of a layer's weights for the device cache: where its first matrix lives on disk.
uint64_t layerKey(const TensorRef& first) {
  const uint64_t h = std::hash<std::string>{}(first.file) * 1000003u ^ static_cast<uint64_t>(first.offset);
  return h == 0 ? 1 : h;
}

// One decoder layer as the C ABI takes it, its tensors mapped from their files rather than read:
// when the device already holds the layer (prefetched during the previous call, or kept
// resident) nothing is read, and the next layer's pages are read while the GPU computes, inside
// the session's copy into pinned memory. The mappings live as long as this object: the session
// reads host memory only during the call.
class HostLayer {
 public:
  explicit HostLayer(const LayerRefs& w) {
    std::memset(&layer_, 0, sizeof layer_);
    put(w, "input_layernorm", layer_.inputNorm);
    put(w, "post_attention_layernorm", layer_.postNorm);
    put(w, "q_proj", layer_.q);
    put(w, "k_proj", layer_.k);
    put(w, "v_proj", layer_.v);
    put(w, "W_pack", layer_.wPack);
    put(w, "q_bias", layer_.qBias);
    put(w, "k_bias", layer_.kBias);
    put(w, "v_bias", layer_.vBias);
    put(w, "o_proj", layer_.o);
    put(w, "o_bias", layer_.oBias);
    put(w, "q_norm", layer_.qNorm);
    put(w, "k_norm", layer_.kNorm);
    put(w, "gate_proj", layer_.gate);
    put(w, "up_proj", layer_.up);
    put(w, "down_proj", layer_.down);
    auto first = w.find(w.count("W_pack") ? "W_pack" : "q_proj");
    if (first != w.end()) layer_.cacheKey = layerKey(first->second);
  }
  const ShortGptCudaLayer* get() const { return &layer_; }
  // Starts reading the layer's pages in the background (it will be copied soon).
  void willNeed() const {
    for (const auto& m : maps_) m->willNeed();
  }
  // ERR_IO when a tensor's file shrank while the session copied it (core/map_guard.h).
  void throwIfShrank() const {
    for (const auto& m : maps_) m->throwIfShrank();
  }

 private:
  void put(const LayerRefs& w, const char* role, ShortGptCudaTensor& slot) {
    auto it = w.find(role);
    if (it == w.end()) return;
    const TensorRef& ref = it->second;
    maps_.push_back(std::make_unique<MappedTensor>(ref));
    slot.data = maps_.back()->data();
    slot.dtype = sgDtype(ref.dtype);
    slot.rows = ref.shape.empty() ? 1 : ref.shape[0];
    slot.cols = ref.shape.size() >= 2 ? ref.shape[1] : 1;
  }

  ShortGptCudaLayer layer_;
  std::vector<std::unique_ptr<MappedTensor>> maps_;
};

// While a long GPU call runs, polls the RunControl and forwards a cancellation to the CUDA
// session, which stops at its next chunk boundary with ERR_ABORTED (the C ABI cannot poll a
// std::function itself).
class CancelWatch {
 public:
  CancelWatch(const ShortGptCudaApi* api, ShortGptCudaSession* s, const RunControl& ctl) {
    if (!ctl.cancelled) return;
    thread_ = std::thread([this, api, s, &ctl] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!done_) {
        if (ctl.cancelled()) {
          api->sessionCancel(s);
          return;
        }
        wake_.wait_for(lock, std::chrono::milliseconds(20));
      }
    });
  }
  ~CancelWatch() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ShortGptCudaApi* api, const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences,
              const CudaBackendOptions& o)
      : api_(api), hidden_(spec.hiddenSize), normalizedLmHead_(spec.normalizedLmHead) {
    ShortGptCudaSpec s;
    std::memset(&s, 0, sizeof s);
    s.hiddenSize = static_cast<int>(spec.hiddenSize);
    s.intermediateSize = static_cast<int>(spec.intermediateSize);
    s.numHeads = static_cast<int>(spec.numHeads);
    s.numKvHeads = static_cast<int>(spec.numKvHeads);
    s.headDim = static_cast<int>(spec.headDim);
    s.vocabSize = static_cast<int>(spec.vocabSize);
    s.rmsNormEps = static_cast<float>(spec.rmsNormEps);
    s.ropeTheta = static_cast<float>(spec.ropeTheta);
    const RopeScalingSpec& rs = spec.ropeScaling;
    s.ropeType = rs.type == RopeScalingSpec::Type::Linear ? SG_ROPE_LINEAR
                 : rs.type == RopeScalingSpec::Type::Llama3 ? SG_ROPE_LLAMA3 : SG_ROPE_NONE;
    s.ropeFactor = static_cast<float>(rs.factor);
    s.ropeLowFreqFactor = static_cast<float>(rs.lowFreqFactor);
    s.ropeHighFreqFactor = static_cast<float>(rs.highFreqFactor);
    s.ropeOriginalMaxPositions = static_cast<int>(rs.originalMaxPositionEmbeddings);
    s.slidingWindow = static_cast<int>(spec.slidingWindow);
    s.qkNorm = spec.qkNorm ? 1 : 0;
    s.device = o.device;
    s.gemmF32 = o.f32Gemm == "bf16" ? SG_GEMM_F32_BF16 : o.f32Gemm == "f32" ? SG_GEMM_F32_EXACT : SG_GEMM_F32_TF32;
    s.batchTokens = o.batchTokens;
    s.weightCacheBytes = o.weightCacheBytes;
    std::vector<int32_t> tokens;
    std::vector<int64_t> lengths;
    int64_t at = 0;
    seqOffsets_.push_back(0);
    for (const auto& q : sequences) {
      seqOffsets_.push_back(seqOffsets_.back() + static_cast<int64_t>(q.size()));
      tokens.insert(tokens.end(), q.begin(), q.end());
      lengths.push_back(static_cast<int64_t>(q.size()));
      at += static_cast<int64_t>(q.size());
      lastRows_.push_back(at - 1);
    }
    totalTokens_ = at;
    check(api_->sessionCreate(&s, tokens.data(), lengths.data(), static_cast<int64_t>(lengths.size()), &session_));
  }
  ~CudaBackend() override {
    if (session_) api_->sessionDestroy(session_);
  }

  void embed(const TensorRef& table, const RunControl& ctl) override {
    ctl.checkCancelled();
    HostTensor t = readHost(table);
    check(api_->sessionEmbed(session_, &t.view));
  }

  LayerStats forwardLayer(const LayerRefs& w, const RunControl& ctl) override { return forwardLayerWithNext(w, nullptr, ctl); }

  // `next` goes down to the session, which copies it on its second stream while this layer
  // computes (cuda_session.cc forwardLayer), so the CLI overlaps like the standalone bench.
  LayerStats forwardLayerWithNext(const LayerRefs& w, const LayerRefs* next, const RunControl& ctl) override {
    ctl.checkCancelled();
    HostLayer layer(w);
    std::unique_ptr<HostLayer> upcoming;
    if (next) {
      upcoming = std::make_unique<HostLayer>(*next);
      upcoming->willNeed();
    }
    ShortGptCudaStats st;
    {
      CancelWatch watch(api_, session_, ctl);
      check(api_->sessionForwardLayer(session_, layer.get(), upcoming ? upcoming->get() : nullptr, &st));
    }
    layer.throwIfShrank();
    if (upcoming) upcoming->throwIfShrank();
    ctl.checkCancelled();
    LayerStats out;
    out.tokens = static_cast<int64_t>(st.tokens);
    out.sumCos = st.sumCos;
    out.nanCount = static_cast<int64_t>(st.nanCount);
    out.sumAngular = st.sumAngular;
    out.sumRelMag = st.sumRelMag;
    // The statistics kernel turns a NaN/Inf token into NaN sums (native/cuda/ops.cu): find the
    // first bad value on the host (this path only runs on failure, so its copy costs nothing).
    if (!(std::isfinite(out.sumCos) && std::isfinite(out.sumAngular) && std::isfinite(out.sumRelMag))) throwNonFiniteResidual();
    return out;
  }

  void copyResidual(float* dst) const override {
    check(api_->sessionReadHidden(session_, dst, totalTokens_ * hidden_));
  }

  void setResidual(const float* src) override {
    check(api_->sessionWriteHidden(session_, src, totalTokens_ * hidden_));
  }

  void copyLastTokenStates(float* dst) const override {
    check(api_->sessionReadRows(session_, lastRows_.data(), static_cast<int64_t>(lastRows_.size()), dst));
  }

  NllStats nll(const TensorRef& finalNorm, const TensorRef& lmHead, const RunControl& ctl) override {
    ctl.checkCancelled();
    HostTensor n = readHost(finalNorm), h = readHost(lmHead);
    if (normalizedLmHead_) normalizeRows(h);
    ShortGptCudaNll r;
    {
      CancelWatch watch(api_, session_, ctl);
      check(api_->sessionNll(session_, &n.view, &h.view, &r));
    }
    if (!(std::isfinite(r.sumNll) && std::isfinite(r.logitsSum))) {
      throw EngineError("ERR_NONFINITE_LOGITS", "the logits (final norm + lm_head '" + lmHead.name +
                                                    "') became non-finite on the CUDA device (position not located): perplexity would be NaN");
    }
    NllStats out;
    out.sumNll = r.sumNll;
    out.predictions = static_cast<int64_t>(r.predictions);
    out.logitsSum = r.logitsSum;
    return out;
  }

 private:
  [[noreturn]] void throwNonFiniteResidual() const {
    std::vector<float> h(static_cast<size_t>(totalTokens_ * hidden_));
    copyResidual(h.data());
    const int64_t i = firstNonFinite(h.data(), static_cast<int64_t>(h.size()));
    if (i < 0) {
      throw EngineError("ERR_NONFINITE_ACTIVATION", "the layer's statistics became non-finite on the CUDA device (its input held NaN/Inf)");
    }
    throwNonFiniteActivation("the layer's output (the residual stream)", placeOfRow(seqOffsets_, i / hidden_), i % hidden_, h[static_cast<size_t>(i)]);
  }

  // Baichuan 2's NormHead, done on the host before upload so the C ABI needs no new field: rows
  // become row / max(||row||, 1e-12) (torch.nn.functional.normalize) in f32, with the norm summed
  // in double, exactly as the CPU backend does. The normalised head is uploaded as f32 (it then
  // follows the f32 GEMM mode), not rounded back to the checkpoint's 16-bit dtype.
  static void normalizeRows(HostTensor& t) {
    const int64_t rows = t.view.rows, cols = t.view.cols;
    std::vector<float> f(static_cast<size_t>(rows * cols));
    const DType dt = t.view.dtype == SG_DTYPE_BF16 ? DType::BF16 : t.view.dtype == SG_DTYPE_F16 ? DType::F16 : DType::F32;
    convertToF32(t.bytes.data(), dt, f.data(), f.size());
    for (int64_t r = 0; r < rows; ++r) {
      float* row = f.data() + r * cols;
      double ss = 0;
      for (int64_t j = 0; j < cols; ++j) ss += static_cast<double>(row[j]) * row[j];
      const float norm = std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
      for (int64_t j = 0; j < cols; ++j) row[j] /= norm;
    }
    t.bytes.assign(reinterpret_cast<const uint8_t*>(f.data()), reinterpret_cast<const uint8_t*>(f.data() + f.size()));
    t.view.data = t.bytes.data();
    t.view.dtype = SG_DTYPE_F32;
  }

  void check(int rc) const {
    if (rc != 0) throw EngineError(api_->lastErrorCode(), std::string("CUDA backend: ") + api_->lastErrorMessage());
  }

  const ShortGptCudaApi* api_;
  ShortGptCudaSession* session_ = nullptr;
  int64_t hidden_ = 0, totalTokens_ = 0;
  bool normalizedLmHead_ = false;
  std::vector<int64_t> lastRows_;
  std::vector<int64_t> seqOffsets_;  // [sequences + 1] first row of each sequence
};

}  // namespace

void registerCudaExports(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
}

bool parseCudaSessionOptions(const Napi::Object& o, CudaBackendOptions* out) {
  const Napi::Value device = o.Get("device");
  if (device.IsUndefined()) return false;
  const std::string name = device.IsString() ? device.As<Napi::String>().Utf8Value() : "";
  if (name == "cpu") return false;
  if (name != "cuda") throw EngineError("ERR_INVALID_ARG", "Session options.device must be 'cpu' or 'cuda'");
  const Napi::Value c = o.Get("cuda");
  if (c.IsUndefined()) return true;
  if (!c.IsObject()) throw EngineError("ERR_INVALID_ARG", "Session options.cuda must be an object");
  const Napi::Object co = c.As<Napi::Object>();
  auto count = [&](const char* key, double max) -> double {
    const Napi::Value v = co.Get(key);
    if (v.IsUndefined()) return -1;
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -2;
    if (!(d >= 0 && d <= max && d == static_cast<double>(static_cast<int64_t>(d))))
      throw EngineError("ERR_INVALID_ARG", std::string("Session options.cuda.") + key + " must be an integer in [0, " +
                                               std::to_string(static_cast<int64_t>(max)) + "]");
    return d;
  };
  if (double d = count("device", 1024); d >= 0) out->device = static_cast<int>(d);
  if (double d = count("batchTokens", 1e12); d >= 0) out->batchTokens = static_cast<int64_t>(d);
  if (double d = count("weightCacheBytes", 9.0e15); d >= 0) out->weightCacheBytes = static_cast<uint64_t>(d);
  const Napi::Value g = co.Get("f32Gemm");
  if (!g.IsUndefined()) {
    const std::string mode = g.IsString() ? g.As<Napi::String>().Utf8Value() : "";
    if (mode != "tf32" && mode != "bf16" && mode != "f32")
      throw EngineError("ERR_INVALID_ARG", "Session options.cuda.f32Gemm must be 'tf32', 'bf16' or 'f32'");
    out->f32Gemm = mode;
  }
  return true;
}

std::unique_ptr<Backend> createCudaBackend(const ModelSpec& spec, std::vector<std::vector<int32_t>> sequences,
                                           const CudaBackendOptions& options) {
  // Issue 14's architecture pieces exist only in the CPU backend: refuse rather than compute
  // something else (before loading CUDA, so the message is the same on any machine).
  auto refuse = [](const std::string& what) {
    throw EngineError("ERR_UNSUPPORTED", what + " is not implemented by the CUDA backend; use --device cpu");
  };
  if (spec.gemmaNorms || spec.roundEmbeddingScale || spec.attnLogitSoftcapping != 0 || spec.finalLogitSoftcapping != 0 ||
      !spec.fullAttentionLayers.empty() || spec.localRopeTheta != 0) {
    refuse("Gemma's (1 + w) norms, four norms per layer, GeGLU, soft-capping and per-layer attention windows / RoPE bases");
  }
  if (spec.embeddingMultiplier != 1.0 || spec.residualMultiplier != 1.0 || spec.attentionScale != 0.0 || spec.logitsScaling != 1.0) {
    refuse("Granite's embedding/residual/attention multipliers and logits_scaling");
  }
  if (!spec.noRopeLayers.empty()) refuse("layers without rotary embedding (SmolLM3 no_rope_layers)");
  if (spec.postNorms) refuse("OLMo 2's post-norms and whole-projection q/k norms");
  if (spec.fusedGateUp) refuse("Phi-3's fused gate_up_proj");
  if (spec.rotaryDim != 0 && spec.rotaryDim != spec.headDim) refuse("partial rotary embeddings (partial_rotary_factor < 1)");
  if (spec.ropeScaling.type == RopeScalingSpec::Type::LongRope) refuse("longrope rope scaling (Phi-3)");
  if (spec.numExperts > 0) refuse("the mixture-of-experts MLP (Mixtral, Qwen3-MoE)");
  const CudaLibrary& lib = cudaLibrary();
  if (!lib.api) throw EngineError("ERR_CUDA_UNAVAILABLE", lib.error);
  ShortGptCudaProbe p;
  lib.api->probe(&p);
  if (!p.usable) throw EngineError("ERR_CUDA_UNAVAILABLE", std::string("CUDA is not usable: ") + p.reason);
  if (options.device < 0 || options.device >= p.deviceCount)
    throw EngineError("ERR_CUDA_UNAVAILABLE", "CUDA device " + std::to_string(options.device) + " does not exist (" +
                                                  std::to_string(p.deviceCount) + " found)");
  return std::make_unique<CudaBackend>(lib.api, spec, std::move(sequences), options);
}

}  // namespace shortgpt
