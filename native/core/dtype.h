// Checkpoint element types the engine computes with, and their conversion to f32.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace shortgpt {

enum class DType { F32, F16, BF16 };

inline size_t dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }

// Throws std::invalid_argument naming the dtype when it is not one we compute with.
DType parseDType(const std::string& name);
const char* dtypeName(DType t);

inline float bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// IEEE 754 binary16 -> binary32, exact for every input (subnormals, inf, NaN).
inline float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Converts `count` elements of `src` (dtype t) to f32.
void convertToF32(const void* src, DType t, float* dst, size_t count);

// The function convertToF32 would use for dtype t (vectorised where the CPU allows), chosen once:
// for callers that convert many small pieces.
using ConvertToF32Fn = void (*)(const void* src, float* dst, size_t count);
ConvertToF32Fn converterToF32(DType t);

}  // namespace shortgpt
