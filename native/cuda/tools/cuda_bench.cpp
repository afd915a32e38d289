// shortgpt_cuda_bench: times Block Influence scoring on the CUDA backend with synthetic BF16
// weights of a named shape (scripts/gpu-check.sh runs it). It drives libshortgpt_cuda.so through
// the same C ABI as the addon, so what it times is what `score --device cuda` runs, minus file
// reads. Weights live in host memory (one buffer per layer) and are streamed to the device layer
// by layer with the next layer's copy overlapping the current layer's compute.
//
//   shortgpt_cuda_bench --lib build/Release/libshortgpt_cuda.so --shape 7B --batch 64 --seq 2048
//                       [--layers N] [--peak] [--device 0]
// Prints one JSON line.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/cuda_abi.h"

namespace {

struct Shape {
  int hidden, layers, heads, kvHeads, inter, vocab;
  double theta;
};

// The peers' shapes (../shared/peers/torch_peer.py) plus Llama-2-70B.
const std::map<std::string, Shape> kShapes = {
    {"S", {576, 30, 9, 3, 1536, 49152, 10000.0}},
    {"M", {2048, 16, 32, 8, 8192, 128256, 500000.0}},
    {"7B", {4096, 32, 32, 32, 11008, 32000, 10000.0}},
    {"70B", {8192, 80, 64, 8, 28672, 32000, 10000.0}},
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "shortgpt_cuda_bench: %s\n", msg.c_str());
  std::exit(1);
}

uint16_t toBf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// Fills n bf16 values ~ N(0, std) (norm weights: 1.0), in parallel.
void fillBf16(uint16_t* p, size_t n, float stdv, uint64_t seed) {
  const unsigned threads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([=] {
      std::mt19937_64 rng(seed * 7919 + t);
      std::normal_distribution<float> dist(0.f, stdv);
      const size_t b = n * t / threads, e = n * (t + 1) / threads;
      for (size_t i = b; i < e; ++i) p[i] = stdv == 0.f ? toBf16(1.f) : toBf16(dist(rng));
    });
  }
  for (auto& th : pool) th.join();
}

void parallelCopy(void* dst, const void* src, size_t bytes) {
  const unsigned threads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    const size_t b = bytes * t / threads, e = bytes * (t + 1) / threads;
    pool.emplace_back([=] { std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, e - b); });
  }
  for (auto& th : pool) th.join();
}

struct HostLayer {
  std::vector<uint16_t> inNorm, postNorm, q, k, v, o, gate, up, down;
};

ShortGptCudaTensor tensor(const std::vector<uint16_t>& v, int64_t rows, int64_t cols) {
  return ShortGptCudaTensor{v.data(), SG_DTYPE_BF16, rows, cols};
}

}  // namespace

int main(int argc, char** argv) {
  std::string lib = "build/Release/libshortgpt_cuda.so", shapeName = "7B";
  int batch = 64, seq = 2048, layersToRun = -1, device = 0;
  bool peak = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--lib") lib = next();
    else if (a == "--shape") shapeName = next();
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--seq") seq = std::stoi(next());
    else if (a == "--layers") layersToRun = std::stoi(next());
    else if (a == "--device") device = std::stoi(next());
    else if (a == "--peak") peak = true;
    else die("unknown option " + a);
  }
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) die(std::string("cannot load ") + lib + ": " + dlerror());
  auto fn = reinterpret_cast<ShortGptCudaApiFn>(dlsym(h, SHORTGPT_CUDA_API_SYMBOL));
  if (!fn) die(lib + " does not export " SHORTGPT_CUDA_API_SYMBOL);
  const ShortGptCudaApi* api = fn();
  if (api->abiVersion != SHORTGPT_CUDA_ABI_VERSION) die("ABI version mismatch");
  auto check = [&](int rc, const char* what) {
    if (rc != 0) die(std::string(what) + ": " + api->lastErrorCode() + ": " + api->lastErrorMessage());
  };

  if (peak) {
    double tf = 0;
    check(api->gemmPeakTflops(device, 8192, 20, &tf), "gemm peak");
    std::printf("{\"gemmPeakTflops\": %.1f, \"size\": 8192}\n", tf);
    return 0;
  }
  auto it = kShapes.find(shapeName);
  if (it == kShapes.end()) die("unknown shape " + shapeName + " (S, M, 7B, 70B)");
  const Shape sh = it->second;
  const int L = layersToRun > 0 ? std::min(layersToRun, sh.layers) : sh.layers;
  const int hd = sh.hidden / sh.heads, qd = sh.heads * hd, kvd = sh.kvHeads * hd;

  std::vector<int32_t> tokens(size_t(batch) * seq);
  std::mt19937 rng(42);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % sh.vocab);
  std::vector<int64_t> lengths(batch, seq);

  ShortGptCudaSpec spec;
  std::memset(&spec, 0, sizeof spec);
  spec.hiddenSize = sh.hidden;
  spec.intermediateSize = sh.inter;
  spec.numHeads = sh.heads;
  spec.numKvHeads = sh.kvHeads;
  spec.headDim = hd;
  spec.vocabSize = sh.vocab;
  spec.rmsNormEps = 1e-5f;
  spec.ropeTheta = static_cast<float>(sh.theta);
  spec.device = device;
  spec.gemmF32 = SG_GEMM_F32_TF32;

  // The session first: a machine without a usable GPU fails here, before gigabytes of weights.
  auto t0 = std::chrono::steady_clock::now();
  ShortGptCudaSession* s = nullptr;
  check(api->sessionCreate(&spec, tokens.data(), lengths.data(), batch, &s), "sessionCreate");
  // One random layer, copied into L distinct host buffers: the copies make every layer a real
  // host-to-device transfer (the backend caches by host address) without L times the RNG cost.
  const auto tGen = std::chrono::steady_clock::now();
  HostLayer proto;
  auto make = [](std::vector<uint16_t>& v, size_t n, float stdv, uint64_t seed) { v.resize(n); fillBf16(v.data(), n, stdv, seed); };
  make(proto.inNorm, sh.hidden, 0.f, 1);
  make(proto.postNorm, sh.hidden, 0.f, 2);
  make(proto.q, size_t(qd) * sh.hidden, 0.02f, 3);
  make(proto.k, size_t(kvd) * sh.hidden, 0.02f, 4);
  make(proto.v, size_t(kvd) * sh.hidden, 0.02f, 5);
  make(proto.o, size_t(sh.hidden) * qd, 0.02f, 6);
  make(proto.gate, size_t(sh.inter) * sh.hidden, 0.02f, 7);
  make(proto.up, size_t(sh.inter) * sh.hidden, 0.02f, 8);
  make(proto.down, size_t(sh.hidden) * sh.inter, 0.02f, 9);
  std::vector<uint16_t> embed;
  make(embed, size_t(sh.vocab) * sh.hidden, 0.02f, 10);
  std::vector<HostLayer> layers(L);
  for (HostLayer& l : layers) {
    auto dup = [](std::vector<uint16_t>& d, const std::vector<uint16_t>& s) { d.resize(s.size()); parallelCopy(d.data(), s.data(), s.size() * 2); };
    dup(l.inNorm, proto.inNorm); dup(l.postNorm, proto.postNorm); dup(l.q, proto.q); dup(l.k, proto.k); dup(l.v, proto.v);
    dup(l.o, proto.o); dup(l.gate, proto.gate); dup(l.up, proto.up); dup(l.down, proto.down);
  }
  const double genS = std::chrono::duration<double>(std::chrono::steady_clock::now() - tGen).count();

  std::vector<ShortGptCudaLayer> refs(L);
  for (int i = 0; i < L; ++i) {
    ShortGptCudaLayer& r = refs[i];
    std::memset(&r, 0, sizeof r);
    r.cacheKey = static_cast<uint64_t>(i) + 1;
    const HostLayer& l = layers[i];
    r.inputNorm = tensor(l.inNorm, sh.hidden, 1);
    r.postNorm = tensor(l.postNorm, sh.hidden, 1);
    r.q = tensor(l.q, qd, sh.hidden);
    r.k = tensor(l.k, kvd, sh.hidden);
    r.v = tensor(l.v, kvd, sh.hidden);
    r.o = tensor(l.o, sh.hidden, qd);
    r.gate = tensor(l.gate, sh.inter, sh.hidden);
    r.up = tensor(l.up, sh.inter, sh.hidden);
    r.down = tensor(l.down, sh.hidden, sh.inter);
  }

  t0 = std::chrono::steady_clock::now();  // timed: embedding + every layer (weights streamed)
  ShortGptCudaTensor emb{embed.data(), SG_DTYPE_BF16, sh.vocab, sh.hidden};
  check(api->sessionEmbed(s, &emb), "sessionEmbed");
  double computeMs = 0, transferMs = 0, overlapMs = 0, sumBi = 0;
  for (int i = 0; i < L; ++i) {
    ShortGptCudaStats st;
    check(api->sessionForwardLayer(s, &refs[i], i + 1 < L ? &refs[i + 1] : nullptr, &st), "sessionForwardLayer");
    ShortGptCudaTimings tm;
    check(api->sessionTimings(s, &tm), "sessionTimings");
    computeMs += tm.computeMs;
    transferMs += tm.transferMs;
    overlapMs += tm.uploadOverlapMs;
    sumBi += 1.0 - st.sumCos / st.tokens;
  }
  const double wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ShortGptCudaTimings tm;
  check(api->sessionTimings(s, &tm), "sessionTimings");
  api->sessionDestroy(s);

  // FLOPs as the PyTorch peer counts them: 2 x params per layer + causal attention.
  const double pLayer = double(sh.hidden) * sh.hidden * 2 * (double(qd) / sh.hidden) + double(sh.hidden) * kvd * 2 + 3.0 * sh.hidden * sh.inter;
  const double flopsPerToken = L * (2 * pLayer + 4.0 * seq * sh.hidden / 2);
  const double tokensTotal = double(batch) * seq;
  std::printf(
      "{\"shape\": \"%s\", \"layers\": %d, \"batch\": %d, \"seq\": %d, \"tokens\": %.0f, \"wallS\": %.3f, \"tokS\": %.1f, "
      "\"tflops\": %.1f, \"computeMs\": %.1f, \"transferMs\": %.1f, \"overlappedCopyMs\": %.1f, \"peakDeviceBytes\": %llu, "
      "\"meanBi\": %.6f, \"weightGenS\": %.1f}\n",
      shapeName.c_str(), L, batch, seq, tokensTotal, wallS, tokensTotal / wallS, flopsPerToken * tokensTotal / wallS / 1e12,
      computeMs, transferMs, overlapMs, static_cast<unsigned long long>(tm.peakDeviceBytes), sumBi / L, genS);
  return 0;
}
