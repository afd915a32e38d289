// Checkpoint dtypes and their conversion to f32. Conversion runs once per weight while it is
// packed, so the scalar path is fine for small models; the F16C/AVX2 path keeps packing of large
// F16/BF16 layers well below the time the GEMM then spends on them.
#include "core/dtype.h"

#include <stdexcept>

#include "cpu/cpu_features.h"
#include "cpu/kernels_avx2.h"

namespace shortgpt {

DType parseDType(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  throw std::invalid_argument("unsupported dtype '" + name + "' (expected F32, F16 or BF16)");
}

const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

namespace {

void copyF32(const void* src, float* dst, size_t count) { std::memcpy(dst, src, count * sizeof(float)); }

// Checkpoint bytes may sit at any offset of a memory-mapped file: read them with memcpy-style
// loads, never through a misaligned uint16_t pointer.
void f16Portable(const void* src, float* dst, size_t count) {
  const unsigned char* bytes = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    dst[i] = f16ToF32(h);
  }
}

void bf16Portable(const void* src, float* dst, size_t count) {
  const unsigned char* bytes = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    dst[i] = bf16ToF32(h);
  }
}

#if defined(SHORTGPT_X86)
void f16Avx2(const void* src, float* dst, size_t count) {
  convertF16ToF32Avx2(static_cast<const unsigned char*>(src), dst, count);
}
void bf16Avx2(const void* src, float* dst, size_t count) {
  convertBF16ToF32Avx2(static_cast<const unsigned char*>(src), dst, count);
}
#endif

}  // namespace

ConvertToF32Fn converterToF32(DType t) {
  switch (t) {
    case DType::F32: return copyF32;
    case DType::F16:
#if defined(SHORTGPT_X86)
      if (useAvx2Kernels() && cpuHasF16c()) return f16Avx2;
#endif
      return f16Portable;
    case DType::BF16:
#if defined(SHORTGPT_X86)
      if (useAvx2Kernels()) return bf16Avx2;
#endif
      return bf16Portable;
  }
  return copyF32;
}

void convertToF32(const void* src, DType t, float* dst, size_t count) {
  if (count > 0) converterToF32(t)(src, dst, count);
}

}  // namespace shortgpt
