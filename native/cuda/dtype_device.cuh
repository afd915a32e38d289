// Element load/store by run-time dtype (SG_DTYPE_*) for the memory-bound kernels: the branch is
// uniform across a launch, so it costs little next to the memory traffic.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/cuda_abi.h"

namespace shortgpt::cuda {

__device__ __forceinline__ float loadAs(const void* p, int dt, int64_t i) {
  if (dt == SG_DTYPE_F32) return static_cast<const float*>(p)[i];
  if (dt == SG_DTYPE_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return __half2float(static_cast<const __half*>(p)[i]);
}

// Round to nearest even, as PyTorch's .to(dtype) does.
__device__ __forceinline__ void storeAs(void* p, int dt, int64_t i, float v) {
  if (dt == SG_DTYPE_F32) {
    static_cast<float*>(p)[i] = v;
  } else if (dt == SG_DTYPE_BF16) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  } else {
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  }
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace shortgpt::cuda
