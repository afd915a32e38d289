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

// Reads bytes [byteBegin, byteBegin + byteCount) of the tensor `ref` into dst.
// Throws EngineError ERR_IO naming the tensor and file when the file cannot be opened or read,
// or when the tensor's bytes would lie past the end of the file.
void readTensorRange(const TensorRef& ref, int64_t byteBegin, int64_t byteCount, void* dst);

// The whole tensor's bytes.
std::vector<uint8_t> readTensorBytes(const TensorRef& ref);

// The whole tensor converted to f32 (for small tensors: norms, biases).
std::vector<float> readTensorF32(const TensorRef& ref);

}  // namespace shortgpt
