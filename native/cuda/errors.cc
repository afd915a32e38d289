#include "cuda/errors.h"

#include <cuda_runtime.h>

#include "cuda/cublas_loader.h"

namespace shortgpt::cuda {

void throwCudaError(int err, const char* what, const char* file, int line) {
  const cudaError_t e = static_cast<cudaError_t>(err);
  std::string code = "ERR_CUDA";
  if (e == cudaErrorMemoryAllocation) code = "ERR_CUDA_OOM";
  else if (e == cudaErrorLaunchFailure || e == cudaErrorIllegalAddress || e == cudaErrorLaunchOutOfResources ||
           e == cudaErrorInvalidConfiguration || e == cudaErrorNoKernelImageForDevice)
    code = "ERR_CUDA_LAUNCH";
  else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
    code = "ERR_CUDA_UNAVAILABLE";
  throw CudaFailure(code, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ") in " + what + " at " +
                              file + ":" + std::to_string(line));
}

void throwCublasError(int status, const char* what, const char* file, int line) {
  throw CudaFailure(status == 3 ? "ERR_CUDA_OOM" : "ERR_CUBLAS",
                    std::string(cublasStatusName(status)) + " in " + what + " at " + file + ":" + std::to_string(line));
}

}  // namespace shortgpt::cuda
