#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "cuda/errors.h"

namespace shortgpt::cuda {
namespace {

// Newest first: a CUDA 13 runtime (what we link) works with cuBLAS 13; older cuBLAS majors are
// tried so that a machine with only an older toolkit still gets a clear, specific error from
// cublasCreate rather than "not found".
const char* const kCublasNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
const char* const kCublasLtNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"};

std::once_flag gOnce;
Cublas gCublas;
std::string gError;

std::vector<std::string> candidateDirs() {
  std::vector<std::string> dirs;
  if (const char* d = std::getenv("SHORTGPT_CUBLAS_DIR"); d && *d) dirs.emplace_back(d);
  dirs.emplace_back("");  // the default search path (LD_LIBRARY_PATH, ldconfig cache, RUNPATH)
  if (const char* home = std::getenv("CUDA_HOME"); home && *home) dirs.emplace_back(std::string(home) + "/lib64");
  dirs.emplace_back("/usr/local/cuda/lib64");
  return dirs;
}

void loadOnce() {
  std::string tried;
  void* lib = nullptr;
  for (const std::string& dir : candidateDirs()) {
    const std::string prefix = dir.empty() ? "" : dir + "/";
    for (size_t i = 0; i < sizeof(kCublasNames) / sizeof(kCublasNames[0]) && !lib; ++i) {
      // libcublas needs libcublasLt of the same version; loading it first from the same folder
      // (RTLD_GLOBAL) resolves it even where that folder is not on the search path.
      const std::string lt = prefix + kCublasLtNames[i];
      void* ltLib = dlopen(lt.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (!ltLib) {
        const char* e = dlerror();
        tried += "\n  " + (e ? std::string(e) : lt + ": not found");
      }
      const std::string name = prefix + kCublasNames[i];
      lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) {
        gCublas.path = name;
      } else {
        const char* e = dlerror();
        tried += "\n  " + (e ? std::string(e) : name + ": not found");
      }
    }
    if (lib) break;
  }
  if (!lib) {
    gError = "cuBLAS could not be loaded (the CUDA backend loads it at run time). Tried:" + tried +
             "\nInstall cuBLAS (CUDA toolkit, or `pip install nvidia-cublas`) and put its lib folder on "
             "LD_LIBRARY_PATH or in SHORTGPT_CUBLAS_DIR.";
    return;
  }
  std::string missing;
  auto sym = [&](const char* name, bool required) -> void* {
    void* p = dlsym(lib, name);
    if (!p && required) missing += std::string(missing.empty() ? "" : ", ") + name;
    return p;
  };
  gCublas.create = reinterpret_cast<PFN_cublasCreate_v2>(sym("cublasCreate_v2", true));
  gCublas.destroy = reinterpret_cast<PFN_cublasDestroy_v2>(sym("cublasDestroy_v2", true));
  gCublas.setStream = reinterpret_cast<PFN_cublasSetStream_v2>(sym("cublasSetStream_v2", true));
  gCublas.setMathMode = reinterpret_cast<PFN_cublasSetMathMode>(sym("cublasSetMathMode", true));
  gCublas.setWorkspace = reinterpret_cast<PFN_cublasSetWorkspace_v2>(sym("cublasSetWorkspace_v2", false));
  gCublas.getVersion = reinterpret_cast<PFN_cublasGetVersion_v2>(sym("cublasGetVersion_v2", true));
  gCublas.gemmEx = reinterpret_cast<PFN_cublasGemmEx>(sym("cublasGemmEx", true));
  if (!missing.empty()) {
    gError = gCublas.path + " loaded but lacks " + missing + " (cuBLAS 11 or newer is needed)";
    gCublas = Cublas{};
    dlclose(lib);
  }
}

}  // namespace

const Cublas& cublas() {
  std::call_once(gOnce, loadOnce);
  if (!gError.empty()) throw CudaFailure("ERR_CUBLAS_MISSING", gError);
  return gCublas;
}

std::string cublasLoadError() {
  std::call_once(gOnce, loadOnce);
  return gError;
}

const char* cublasStatusName(int status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

}  // namespace shortgpt::cuda
