// cuBLAS loaded at run time: the build needs no cuBLAS and a CPU-only user needs no CUDA
// library. load() tries the versioned sonames newest first (and SHORTGPT_CUBLAS_DIR, then the
// default search path), and on failure throws ERR_CUBLAS_MISSING listing every file tried and
// what the dynamic loader said about each.
#pragma once
#include <string>

#include "cuda/cublas_api.h"

namespace shortgpt::cuda {

struct Cublas {
  PFN_cublasCreate_v2 create = nullptr;
  PFN_cublasDestroy_v2 destroy = nullptr;
  PFN_cublasSetStream_v2 setStream = nullptr;
  PFN_cublasSetMathMode setMathMode = nullptr;
  PFN_cublasSetWorkspace_v2 setWorkspace = nullptr;  // optional (cuBLAS >= 11.?)
  PFN_cublasGetVersion_v2 getVersion = nullptr;
  PFN_cublasGemmEx gemmEx = nullptr;
  std::string path;  // the file that loaded
};

// Loads once per process (thread-safe); later calls return the same table or rethrow the
// same failure.
const Cublas& cublas();

// Like cublas() but returns the failure message instead of throwing ("" when loaded).
std::string cublasLoadError();

const char* cublasStatusName(int status);

}  // namespace shortgpt::cuda
