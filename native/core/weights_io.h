// Reads a weight tensor's bytes straight from its safetensors file (pread), so weights never
// pass through JavaScript and only the tensor being packed is in memory.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace shortgpt {

// An open tensor: the file is opened and its size checked once, then ranges are read with
// pread (used for row-by-row reads such as embedding lookups and lm_head vocabulary chunks).
class TensorReader {
 public:
  explicit TensorReader(const TensorRef& ref);
  ~TensorReader();
  TensorReader(const TensorReader&) = delete;
  TensorReader& operator=(const TensorReader&) = delete;
  void read(int64_t byteBegin, int64_t byteCount, void* dst) const;

 private:
  TensorRef ref_;
  int fd_ = -1;
};

// A tensor's bytes mapped read-only from its file (mmap), for consumers that read them once (the
// CUDA backend's pinned staging, fast mode's streamed GEMM on the CPU): pages are read from disk only when touched, so a layer that
// turns out to be on the device already costs no read, and willNeed() starts the read-ahead of
// a layer that will be copied soon, in the background. Falls back to reading the bytes (pread)
// when the file cannot be mapped. Throws ERR_IO like TensorReader (missing file, tensor past
// the end of the file). A file that shrinks while mapped does not end the process (SIGBUS):
// the pages past its new end read as zeros and shrank() turns true (core/map_guard.h); callers
// check it after reading and report ERR_IO (throwIfShrank).
class MappedTensor {
 public:
  explicit MappedTensor(const TensorRef& ref);
  ~MappedTensor();
  MappedTensor(const MappedTensor&) = delete;
  MappedTensor& operator=(const MappedTensor&) = delete;

  const void* data() const { return data_; }
  int64_t byteLength() const { return bytes_; }
  bool mapped() const { return map_ != nullptr; }
  const TensorRef& ref() const { return ref_; }
  void willNeed() const;
  // Whether a read found the file shorter than when it was mapped (then zeros were read).
  bool shrank() const;
  // Throws ERR_IO naming the tensor and file when shrank().
  void throwIfShrank() const;

 private:
  TensorRef ref_;
  void* map_ = nullptr;
  size_t mapBytes_ = 0;
  int guard_ = -1;  // map_guard.h slot
  const void* data_ = nullptr;
  int64_t bytes_ = 0;
  std::vector<uint8_t> copy_;  // the fallback
};

// Reads bytes [byteBegin, byteBegin + byteCount) of the tensor `ref` into dst.
// Throws EngineError ERR_IO naming the tensor and file when the file cannot be opened or read,
// or when the tensor's bytes would lie past the end of the file.
void readTensorRange(const TensorRef& ref, int64_t byteBegin, int64_t byteCount, void* dst);

// The whole tensor's bytes.
std::vector<uint8_t> readTensorBytes(const TensorRef& ref);

// The whole tensor converted to f32 (for small tensors: norms, biases). Throws
// ERR_NONFINITE_WEIGHT naming the first NaN/Inf element (core/finite.h).
std::vector<float> readTensorF32(const TensorRef& ref);

}  // namespace shortgpt
