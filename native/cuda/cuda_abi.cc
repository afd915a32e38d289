// The exported table of libshortgpt_cuda.so (cuda_abi.h): the only symbol the addon looks up.
// Every entry catches every exception, so no C++ exception ever crosses the C boundary; the
// failure's code and message wait in thread-local storage for lastErrorCode/lastErrorMessage.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "cuda/cublas_loader.h"
#include "cuda/cuda_abi.h"
#include "cuda/cuda_session.h"
#include "cuda/device_memory.h"
#include "cuda/errors.h"

#ifndef SHORTGPT_CUDA_ARCHS
#define SHORTGPT_CUDA_ARCHS "unknown"
#endif

struct ShortGptCudaSession {
  shortgpt::cuda::CudaSession impl;
  template <typename... A>
  explicit ShortGptCudaSession(A&&... a) : impl(static_cast<A&&>(a)...) {}
};

namespace shortgpt::cuda {
namespace {

thread_local std::string tErrorCode;
thread_local std::string tErrorMessage;

template <typename F>
int guarded(F&& fn) {
  try {
    fn();
    tErrorCode.clear();
    tErrorMessage.clear();
    return 0;
  } catch (const CudaFailure& e) {
    tErrorCode = e.code();
    tErrorMessage = e.what();
  } catch (const std::bad_alloc&) {
    tErrorCode = "ERR_OUT_OF_MEMORY";
    tErrorMessage = "out of host memory in the CUDA backend";
  } catch (const std::exception& e) {
    tErrorCode = "ERR_CUDA";
    tErrorMessage = e.what();
  } catch (...) {
    tErrorCode = "ERR_CUDA";
    tErrorMessage = "unknown failure in the CUDA backend";
  }
  return 1;
}

void copyText(char* dst, size_t cap, const std::string& s) {
  std::snprintf(dst, cap, "%s", s.c_str());
}

const char* buildInfo() {
  static const std::string info = "cuda runtime " + std::to_string(CUDART_VERSION / 1000) + "." +
                                  std::to_string((CUDART_VERSION % 1000) / 10) + ", archs " SHORTGPT_CUDA_ARCHS;
  return info.c_str();
}

int probe(ShortGptCudaProbe* out) {
  std::memset(out, 0, sizeof *out);
  cudaRuntimeGetVersion(&out->runtimeVersion);
  if (cudaDriverGetVersion(&out->driverVersion) != cudaSuccess || out->driverVersion == 0) {
    cudaGetLastError();
    copyText(out->reason, sizeof out->reason, "no NVIDIA driver: libcuda.so.1 could not be loaded");
    return 0;
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    copyText(out->reason, sizeof out->reason,
             std::string("no usable CUDA device: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
    return 0;
  }
  out->deviceCount = count;
  bool anyCapable = false;
  for (int d = 0; d < count && d < SHORTGPT_CUDA_MAX_DEVICES; ++d) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    ShortGptCudaDevice& dev = out->devices[d];
    dev.ordinal = d;
    copyText(dev.name, sizeof dev.name, p.name);
    dev.computeMajor = p.major;
    dev.computeMinor = p.minor;
    dev.multiprocessors = p.multiProcessorCount;
    dev.totalBytes = p.totalGlobalMem;
    // No cudaMemGetInfo here: it would create a context (hundreds of MB) on every GPU of the
    // machine at every backend creation. deviceMemory() asks one device when someone needs it.
    if (p.major >= 8) anyCapable = true;
  }
  if (count == 0) {
    copyText(out->reason, sizeof out->reason, "the NVIDIA driver reports no CUDA device");
    return 0;
  }
  if (!anyCapable) {
    copyText(out->reason, sizeof out->reason,
             "no device of compute capability 8.0 or newer (the kernels are built for sm_80 and sm_90)");
    return 0;
  }
  const std::string blasErr = cublasLoadError();
  if (!blasErr.empty()) {
    copyText(out->reason, sizeof out->reason, blasErr);
    return 0;
  }
  copyText(out->cublasLibrary, sizeof out->cublasLibrary, cublas().path);
  out->usable = 1;
  return 0;
}

const char* lastErrorCode() { return tErrorCode.c_str(); }
const char* lastErrorMessage() { return tErrorMessage.c_str(); }

int sessionCreate(const ShortGptCudaSpec* spec, const int32_t* tokens, const int64_t* lengths, int64_t n,
                  ShortGptCudaSession** out) {
  *out = nullptr;
  return guarded([&] { *out = new ShortGptCudaSession(*spec, tokens, lengths, n); });
}

int sessionEmbed(ShortGptCudaSession* s, const ShortGptCudaTensor* t) {
  return guarded([&] { s->impl.embed(*t); });
}

int sessionForwardLayer(ShortGptCudaSession* s, const ShortGptCudaLayer* l, const ShortGptCudaLayer* next,
                        ShortGptCudaStats* out) {
  return guarded([&] { *out = s->impl.forwardLayer(*l, next); });
}

int sessionNll(ShortGptCudaSession* s, const ShortGptCudaTensor* norm, const ShortGptCudaTensor* head, ShortGptCudaNll* out) {
  return guarded([&] { *out = s->impl.nll(*norm, *head); });
}

int sessionReadHidden(ShortGptCudaSession* s, float* out, int64_t count) {
  return guarded([&] { s->impl.readHidden(out, count); });
}

int sessionReadRows(ShortGptCudaSession* s, const int64_t* rows, int64_t count, float* out) {
  return guarded([&] { s->impl.readRows(rows, count, out); });
}

int sessionWriteHidden(ShortGptCudaSession* s, const float* in, int64_t count) {
  return guarded([&] { s->impl.writeHidden(in, count); });
}

int sessionTimings(ShortGptCudaSession* s, ShortGptCudaTimings* out) {
  return guarded([&] { *out = s->impl.timings(); });
}

void sessionCancel(ShortGptCudaSession* s) {
  if (s) s->impl.cancel();
}

void sessionDestroy(ShortGptCudaSession* s) { delete s; }

int deviceMemory(int device, uint64_t* freeBytes, uint64_t* totalBytes) {
  return guarded([&] {
    SG_CUDA_CHECK(cudaSetDevice(device));
    size_t f = 0, t = 0;
    SG_CUDA_CHECK(cudaMemGetInfo(&f, &t));
    *freeBytes = f;
    *totalBytes = t;
  });
}

int gemmPeakTflops(int device, int size, int reps, double* tflops) {
  return guarded([&] {
    SG_CUDA_CHECK(cudaSetDevice(device));
    const Cublas& blas = cublas();
    DeviceArena arena;
    const size_t n = size_t(size) * size;
    DeviceBuffer a = arena.alloc(n * 2, "GEMM peak A"), b = arena.alloc(n * 2, "GEMM peak B"),
                 c = arena.alloc(n * 4, "GEMM peak C");
    // Random-looking operands: zeros would flatter the tensor cores' power draw.
    std::vector<uint16_t> host(n);
    uint32_t x = 12345;
    for (auto& v : host) {
      x = x * 1664525u + 1013904223u;
      v = static_cast<uint16_t>(0x3c00 | ((x >> 9) & 0x7f) | ((x >> 31) << 15));  // bf16 in ±[2^-7, 2^-6)
    }
    SG_CUDA_CHECK(cudaMemcpy(a.get(), host.data(), n * 2, cudaMemcpyHostToDevice));
    SG_CUDA_CHECK(cudaMemcpy(b.get(), host.data(), n * 2, cudaMemcpyHostToDevice));
    cublasHandle_t h = nullptr;
    SG_CUBLAS_CHECK(blas.create(&h));
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    try {
      SG_CUDA_CHECK(cudaEventCreate(&e0));
      SG_CUDA_CHECK(cudaEventCreate(&e1));
      const float alpha = 1.f, beta = 0.f;
      auto run = [&] {
        SG_CUBLAS_CHECK(blas.gemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, size, size, size, &alpha, a.get(), CUDA_R_16BF, size,
                                    b.get(), CUDA_R_16BF, size, &beta, c.get(), CUDA_R_32F, size, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
      };
      for (int i = 0; i < 3; ++i) run();
      SG_CUDA_CHECK(cudaEventRecord(e0));
      for (int i = 0; i < reps; ++i) run();
      SG_CUDA_CHECK(cudaEventRecord(e1));
      SG_CUDA_CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      SG_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      *tflops = 2.0 * size * double(size) * size * reps / (ms * 1e-3) / 1e12;
    } catch (...) {
      if (e0) cudaEventDestroy(e0);
      if (e1) cudaEventDestroy(e1);
      blas.destroy(h);
      throw;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    blas.destroy(h);
  });
}

const ShortGptCudaApi kApi = {
    SHORTGPT_CUDA_ABI_VERSION, sizeof(ShortGptCudaApi), buildInfo, probe, lastErrorCode, lastErrorMessage,
    sessionCreate, sessionEmbed, sessionForwardLayer, sessionNll, sessionReadHidden, sessionReadRows, sessionTimings,
    sessionCancel, sessionDestroy, gemmPeakTflops, sessionWriteHidden, deviceMemory,
};

}  // namespace
}  // namespace shortgpt::cuda

extern "C" __attribute__((visibility("default"))) const ShortGptCudaApi* shortgpt_cuda_api_v1(void) {
  return &shortgpt::cuda::kApi;
}
