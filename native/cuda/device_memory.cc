#include "cuda/device_memory.h"

#include <cstdio>
#include <cstdlib>

#include "cuda/errors.h"

namespace shortgpt::cuda {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    arena_ = o.arena_;
    p_ = o.p_;
    bytes_ = o.bytes_;
    o.arena_ = nullptr;
    o.p_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (p_ && arena_) arena_->release(p_, bytes_);
  p_ = nullptr;
  bytes_ = 0;
  arena_ = nullptr;
}

std::string formatBytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1ull << 20));
  return std::string(buf) + " (" + std::to_string(bytes) + " bytes)";
}

void DeviceArena::setFailureInjection(const char* nth) {
  failAt_ = 0;
  if (!nth || !*nth) return;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(nth, &end, 10);
  if (end && *end == 0 && nth[0] != '-') failAt_ = n;
}

DeviceBuffer DeviceArena::alloc(size_t bytes, const char* what) {
  if (bytes == 0) bytes = 256;  // keep pointers valid for empty buffers
  void* p = nullptr;
  ++allocs_;
  if (failAt_ != 0 && allocs_ == failAt_) {
    throw CudaFailure("ERR_CUDA_OOM", std::string("out of GPU memory allocating ") + what + ": needed " + formatBytes(bytes) +
                                          " (injected by SHORTGPT_CUDA_FAIL_ALLOC=" + std::to_string(failAt_) + ")");
  }
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state of the runtime
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    throw CudaFailure("ERR_CUDA_OOM",
                      std::string("out of GPU memory allocating ") + what + ": needed " + formatBytes(bytes) +
                          ", free " + formatBytes(freeB) + " of " + formatBytes(totalB) +
                          " (this session already holds " + formatBytes(current_) +
                          "). Lower --batch-tokens (fewer tokens per chunk of activations) or score fewer tokens.");
  }
  SG_CUDA_CHECK(err);
  current_ += bytes;
  if (current_ > peak_) peak_ = current_;
  return DeviceBuffer(this, p, bytes);
}

void DeviceArena::release(void* p, size_t bytes) {
  cudaFree(p);  // a failure here would be a prior sticky error, reported by the next checked call
  current_ -= bytes;
}

}  // namespace shortgpt::cuda
