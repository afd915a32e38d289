// The part of the public cuBLAS C API that the CUDA backend calls, declared here because the
// build machines (this one, CI) have no cuBLAS headers: cuBLAS is loaded at run time
// (cublas_loader.cc), never linked. Values and signatures match NVIDIA's cublas_api.h
// (CUDA 11.0+, unchanged through 13.x): the enums are plain C ints, the handle an opaque pointer.
// cudaDataType_t comes from library_types.h, which ships with the CUDA runtime headers.
#pragma once
#include <driver_types.h>   // cudaStream_t
#include <library_types.h>  // cudaDataType_t: CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14

extern "C" {

typedef struct cublasContext* cublasHandle_t;

typedef enum {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3
} cublasMath_t;

typedef enum {
  CUBLAS_COMPUTE_32F = 68,            // f32 accumulation; inputs used as given
  CUBLAS_COMPUTE_32F_PEDANTIC = 69,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77   // f32 inputs rounded to TF32 for the tensor cores
} cublasComputeType_t;

typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

// Function pointer types for dlsym. Names are the exported symbols (cublas_v2.h maps
// cublasCreate -> cublasCreate_v2 and so on).
typedef cublasStatus_t (*PFN_cublasCreate_v2)(cublasHandle_t* handle);
typedef cublasStatus_t (*PFN_cublasDestroy_v2)(cublasHandle_t handle);
typedef cublasStatus_t (*PFN_cublasSetStream_v2)(cublasHandle_t handle, cudaStream_t stream);
typedef cublasStatus_t (*PFN_cublasSetMathMode)(cublasHandle_t handle, cublasMath_t mode);
typedef cublasStatus_t (*PFN_cublasSetWorkspace_v2)(cublasHandle_t handle, void* workspace,
                                                    size_t workspaceSizeInBytes);
typedef cublasStatus_t (*PFN_cublasGetVersion_v2)(cublasHandle_t handle, int* version);
typedef cublasStatus_t (*PFN_cublasGemmEx)(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const void* alpha, const void* A, cudaDataType_t Atype,
                                           int lda, const void* B, cudaDataType_t Btype, int ldb,
                                           const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                                           cublasComputeType_t computeType, cublasGemmAlgo_t algo);

}  // extern "C"
