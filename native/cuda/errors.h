// Failures inside the CUDA backend: a stable code (the same codes the JavaScript side sees) and
// a message. Every CUDA runtime and cuBLAS call goes through one of the CHECK macros, so nothing
// fails silently; kernel launches are checked with cudaGetLastError right after the launch.
#pragma once
#include <stdexcept>
#include <string>

namespace shortgpt::cuda {

class CudaFailure : public std::runtime_error {
 public:
  CudaFailure(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

[[noreturn]] void throwCudaError(int err, const char* what, const char* file, int line);
[[noreturn]] void throwCublasError(int status, const char* what, const char* file, int line);

}  // namespace shortgpt::cuda

#define SG_CUDA_CHECK(call)                                                         \
  do {                                                                              \
    cudaError_t sg_err_ = (call);                                                   \
    if (sg_err_ != cudaSuccess)                                                     \
      ::shortgpt::cuda::throwCudaError(static_cast<int>(sg_err_), #call, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: configuration errors show up here, faults at the next sync.
#define SG_CUDA_LAUNCH_CHECK(name) SG_CUDA_CHECK(cudaGetLastError())

#define SG_CUBLAS_CHECK(call)                                                        \
  do {                                                                               \
    cublasStatus_t sg_st_ = (call);                                                  \
    if (sg_st_ != CUBLAS_STATUS_SUCCESS)                                             \
      ::shortgpt::cuda::throwCublasError(static_cast<int>(sg_st_), #call, __FILE__, __LINE__); \
  } while (0)
