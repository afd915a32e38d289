// Device allocations of one CUDA session, counted: the session knows its current and peak bytes
// (the benchmark's "peak device memory"), and an allocation that does not fit becomes
// ERR_CUDA_OOM naming what it was for, the bytes asked, the bytes free, and the remedy.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace shortgpt::cuda {

class DeviceArena;

// One owning device allocation (movable, not copyable).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceArena* arena, void* p, size_t bytes) : arena_(arena), p_(p), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = static_cast<DeviceBuffer&&>(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  void reset();
  void* get() const { return p_; }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  DeviceArena* arena_ = nullptr;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class DeviceArena {
 public:
  // `what` names the buffer in the ERR_CUDA_OOM message.
  DeviceBuffer alloc(size_t bytes, const char* what);
  void release(void* p, size_t bytes);
  uint64_t currentBytes() const { return current_; }
  uint64_t peakBytes() const { return peak_; }

  // Test hook (SHORTGPT_CUDA_FAIL_ALLOC=N, read by the session): the N-th alloc of this arena
  // (1-based) throws ERR_CUDA_OOM as a real cudaMalloc failure would, so the GPU check can prove
  // that a session whose constructor fails half-way leaks nothing. Null, "", "0" or anything but
  // a positive integer: off.
  void setFailureInjection(const char* nth);

 private:
  uint64_t current_ = 0;
  uint64_t peak_ = 0;
  uint64_t allocs_ = 0;
  uint64_t failAt_ = 0;  // 0: never
};

std::string formatBytes(uint64_t bytes);

}  // namespace shortgpt::cuda
