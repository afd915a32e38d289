// A stand-in for libshortgpt_cuda.so with no GPU behind it, for the addon's CUDA binding tests
// (test/native/cuda-prefetch.test.ts): the same ABI table (cuda/cuda_abi.h), a probe that says
// "usable", and a session that computes nothing but logs what the binding handed it. Loaded
// through SHORTGPT_CUDA_LIB in a child process. Each sessionForwardLayer appends one line to the
// file named by SHORTGPT_FAKE_CUDA_LOG:
//   forward key=<cacheKey> bytes=<sum of every byte of the layer's tensors> next=<same for the
//   next layer, or "none">
// Summing every byte proves the host pointers and sizes are real (the test sums the same bytes
// from the safetensors file), and the keys show that a prefetched layer would be matched.
// Not shipped: the file name does not match prebuild.js's libshortgpt_*.so.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cuda_abi.h"

struct ShortGptCudaSession {
  int64_t total = 0;
  int hidden = 0;
  bool cancelled = false;
};

namespace {

thread_local std::string tCode, tMessage;

int64_t nonFiniteAt() {
  const char* v = std::getenv("SHORTGPT_FAKE_CUDA_NONFINITE");
  return v ? std::atoll(v) : -1;
}

int fail(const char* code, const std::string& message) {
  tCode = code;
  tMessage = message;
  return 1;
}

uint64_t byteSum(const ShortGptCudaTensor& t) {
  if (!t.data) return 0;
  const size_t n = static_cast<size_t>(t.rows * t.cols) * (t.dtype == SG_DTYPE_F32 ? 4 : 2);
  const auto* p = static_cast<const unsigned char*>(t.data);
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

uint64_t layerSum(const ShortGptCudaLayer& l) {
  const ShortGptCudaTensor* all[] = {&l.inputNorm, &l.q,    &l.k,     &l.v,        &l.wPack, &l.qBias,
                                     &l.kBias,     &l.vBias, &l.o,    &l.oBias,    &l.qNorm, &l.kNorm,
                                     &l.postNorm,  &l.gate, &l.up,    &l.down};
  uint64_t s = 0;
  for (const ShortGptCudaTensor* t : all) s += byteSum(*t);
  return s;
}

const char* buildInfo() { return "fake CUDA backend for tests"; }

int probe(ShortGptCudaProbe* out) {
  std::memset(out, 0, sizeof *out);
  out->usable = 1;
  out->deviceCount = 1;
  out->driverVersion = 1;
  out->runtimeVersion = 1;
  std::snprintf(out->devices[0].name, sizeof out->devices[0].name, "fake device");
  out->devices[0].computeMajor = 9;
  return 0;
}

const char* lastErrorCode() { return tCode.c_str(); }
const char* lastErrorMessage() { return tMessage.c_str(); }

int sessionCreate(const ShortGptCudaSpec* spec, const int32_t*, const int64_t* lengths, int64_t n,
                  ShortGptCudaSession** out) {
  auto* s = new ShortGptCudaSession;
  for (int64_t i = 0; i < n; ++i) s->total += lengths[i];
  s->hidden = spec->hiddenSize;
  *out = s;
  return 0;
}

int sessionEmbed(ShortGptCudaSession*, const ShortGptCudaTensor*) { return 0; }

int sessionForwardLayer(ShortGptCudaSession* s, const ShortGptCudaLayer* l, const ShortGptCudaLayer* next,
                        ShortGptCudaStats* out) {
  const char* path = std::getenv("SHORTGPT_FAKE_CUDA_LOG");
  if (!path) return fail("ERR_CUDA", "SHORTGPT_FAKE_CUDA_LOG is not set");
  FILE* f = std::fopen(path, "a");
  if (!f) return fail("ERR_IO", std::string("cannot open ") + path);
  std::fprintf(f, "forward key=%llu bytes=%llu", static_cast<unsigned long long>(l->cacheKey),
               static_cast<unsigned long long>(layerSum(*l)));
  if (next) {
    std::fprintf(f, " next=%llu nextBytes=%llu\n", static_cast<unsigned long long>(next->cacheKey),
                 static_cast<unsigned long long>(layerSum(*next)));
  } else {
    std::fprintf(f, " next=none\n");
  }
  std::fclose(f);
  // SHORTGPT_FAKE_CUDA_NONFINITE=<flat index>: the device found NaN (its statistics kernel makes
  // the sums NaN) and the residual stream holds NaN at that index (see sessionReadHidden).
  const double nan = nonFiniteAt() >= 0 ? std::nan("") : 0.0;
  *out = ShortGptCudaStats{static_cast<double>(s->total), nan, 0.0, 0.0, 0.0};
  return 0;
}

int sessionNll(ShortGptCudaSession*, const ShortGptCudaTensor*, const ShortGptCudaTensor*, ShortGptCudaNll* out) {
  *out = ShortGptCudaNll{nonFiniteAt() >= 0 ? std::nan("") : 0.0, 0.0, 0.0};
  return 0;
}

int sessionReadHidden(ShortGptCudaSession*, float* out, int64_t count) {
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(count));
  const int64_t at = nonFiniteAt();
  if (at >= 0 && at < count) out[at] = std::nanf("");
  return 0;
}

int sessionReadRows(ShortGptCudaSession* s, const int64_t*, int64_t count, float* out) {
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(count * s->hidden));
  return 0;
}

int sessionTimings(ShortGptCudaSession*, ShortGptCudaTimings* out) {
  std::memset(out, 0, sizeof *out);
  return 0;
}

void sessionCancel(ShortGptCudaSession* s) {
  if (s) s->cancelled = true;
}
void sessionDestroy(ShortGptCudaSession* s) { delete s; }

int gemmPeakTflops(int, int, int, double*) { return fail("ERR_UNSUPPORTED", "the fake backend has no GEMM"); }

int sessionWriteHidden(ShortGptCudaSession*, const float*, int64_t) { return 0; }

int deviceMemory(int, uint64_t* freeBytes, uint64_t* totalBytes) {
  *freeBytes = *totalBytes = 0;
  return 0;
}

const ShortGptCudaApi kApi = {
    SHORTGPT_CUDA_ABI_VERSION, sizeof(ShortGptCudaApi), buildInfo, probe, lastErrorCode, lastErrorMessage,
    sessionCreate, sessionEmbed, sessionForwardLayer, sessionNll, sessionReadHidden, sessionReadRows, sessionTimings,
    sessionCancel, sessionDestroy, gemmPeakTflops, sessionWriteHidden, deviceMemory,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const ShortGptCudaApi* shortgpt_cuda_api_v1(void) { return &kApi; }
