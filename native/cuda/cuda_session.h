// The CUDA engine behind the C ABI (cuda_abi.h): a session owns the residual stream of every
// calibration token on one device and runs decoder layers over it, with the same semantics as
// the CPU backend (native/cpu/cpu_backend.cc): Hugging Face Llama/Mistral/Qwen2/Qwen3/Baichuan.
//
// Memory: hidden [total, H] f32 (the residual stream), per-token statistics [total, 4] f64,
// scratch for one chunk of whole sequences (`batchTokens`), and weight slots: at least two
// layers (the one computing and the one being copied in on the second stream); more when
// weightCacheBytes allows, which keeps a whole model resident when it fits.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cuda/cublas_loader.h"
#include "cuda/cuda_abi.h"
#include "cuda/device_memory.h"
#include "cuda/owned.h"

namespace shortgpt::cuda {

// The session's CUDA resources, each released by its owner (owned.h) on every path out,
// including a constructor that throws. Release errors are ignored: the process may be exiting.
struct StreamTraits {
  using Handle = cudaStream_t;
  static void release(Handle h) noexcept { cudaStreamDestroy(h); }
};
struct EventTraits {
  using Handle = cudaEvent_t;
  static void release(Handle h) noexcept { cudaEventDestroy(h); }
};
struct PinnedTraits {
  using Handle = void*;
  static void release(Handle h) noexcept { cudaFreeHost(h); }
};
struct BlasTraits {
  using Handle = cublasHandle_t;
  static void release(Handle h) noexcept {
    try {
      cublas().destroy(h);
    } catch (...) {
    }
  }
};
using OwnedStream = Owned<StreamTraits>;
using OwnedEvent = Owned<EventTraits>;
using OwnedPinned = Owned<PinnedTraits>;
using OwnedBlas = Owned<BlasTraits>;

// One layer's weights on the device, packed: [q; k; v] rows, o, [gate; up] rows, down in the
// GEMM dtype; norms and biases in f32.
struct LayerSlot {
  uint64_t key = 0;  // ShortGptCudaLayer::cacheKey of the weights held; 0 = none
  DeviceBuffer buf;
  size_t offQkv = 0, offO = 0, offGu = 0, offDown = 0;   // GEMM weights
  size_t offInNorm = 0, offPostNorm = 0, offQkvBias = 0, offOBias = 0, offQNorm = 0, offKNorm = 0;
  bool hasQkvBias = false, hasOBias = false, hasQkNorm = false;
  int gemmDt = SG_DTYPE_F32;
  OwnedEvent ready;  // recorded on the copy stream when the upload finished
  uint64_t lastUse = 0;
  bool valid = false;
};

class CudaSession {
 public:
  CudaSession(const ShortGptCudaSpec& spec, const int32_t* tokens, const int64_t* lengths, int64_t numSequences);
  ~CudaSession();
  CudaSession(const CudaSession&) = delete;
  CudaSession& operator=(const CudaSession&) = delete;

  void embed(const ShortGptCudaTensor& table);
  ShortGptCudaStats forwardLayer(const ShortGptCudaLayer& layer, const ShortGptCudaLayer* next);
  ShortGptCudaNll nll(const ShortGptCudaTensor& finalNorm, const ShortGptCudaTensor& lmHead);
  void readHidden(float* out, int64_t count);
  void readRows(const int64_t* rows, int64_t count, float* out);
  void writeHidden(const float* in, int64_t count);
  ShortGptCudaTimings timings() const;
  void cancel() { cancelled_.store(true); }

 private:
  struct Chunk {
    int64_t begin, tokens;                  // rows [begin, begin + tokens) of hidden
    std::vector<std::pair<int64_t, int64_t>> sequences;  // (first row, length), rows absolute
  };

  void checkCancelled() const;
  void validateLayer(const ShortGptCudaLayer& w) const;
  int layerGemmDtype(const ShortGptCudaLayer& w) const;
  size_t layerBytes(const ShortGptCudaLayer& w) const;
  LayerSlot& slotFor(const ShortGptCudaLayer& w, const LayerSlot* busy);
  LayerSlot* findSlot(const ShortGptCudaLayer& w);
  void uploadLayer(const ShortGptCudaLayer& w, LayerSlot& slot);
  // Copies a host tensor to dst on the copy stream, converting to dstDt (through the raw_
  // buffer, kConvertBytes at a time, when the dtypes differ). Blocks only while pinned staging
  // buffers recycle.
  void uploadTensor(const ShortGptCudaTensor& t, void* dst, int dstDt);
  void uploadBytes(const void* host, size_t bytes, void* dst);
  void gemm(const void* W, int dt, const void* x, int64_t rows, int in, int out, float* y, int64_t ldy, bool accumulate);
  void runChunk(const Chunk& c, const LayerSlot& s);

  ShortGptCudaSpec spec_;
  int64_t total_ = 0;
  int qDim_ = 0, kvDim_ = 0, qkvDim_ = 0;
  std::vector<int32_t> tokensHost_;
  std::vector<int64_t> seqStart_, seqLen_;
  std::vector<Chunk> chunks_;
  int64_t chunkRows_ = 0;

  // Declaration order is release order reversed: device buffers (which point at arena_) go
  // before arena_, the cuBLAS handle before the stream it is bound to.
  DeviceArena arena_;
  OwnedStream computeOwned_, copyOwned_;
  cudaStream_t compute_ = nullptr, copy_ = nullptr;  // the owned streams' handles
  OwnedBlas blasOwned_;
  cublasHandle_t blas_ = nullptr;
  OwnedEvent start_, stop_;
  size_t smemOptin_ = 0;  // cudaDevAttrMaxSharedMemoryPerBlockOptin: decides the attention kernel

  DeviceBuffer tokens_, positions_, targets_, ropeCos_, ropeSin_;
  DeviceBuffer hidden_, snapshot_, perToken_, sums_;
  DeviceBuffer normed_, qkv_, attn_, gu_, act_;
  DeviceBuffer qkv16_;  // 16-bit q/k/v for the tensor-core attention (allocated on first use)
  bool simtAttention_ = false;  // SHORTGPT_CUDA_ATTENTION=simt forces the f32 kernel
  // Conversion staging on the device (copy stream only): a fixed kConvertBytes, allocated with
  // the session, so converting never grows it (no cudaFree, which would synchronise the device,
  // during a prefetch; no lm_head-sized buffer held for the session's life).
  static constexpr size_t kConvertBytes = size_t(64) << 20;
  DeviceBuffer raw_;
  DeviceBuffer blasWorkspace_;

  static constexpr int kStaging = 2;
  static constexpr size_t kStagingBytes = size_t(64) << 20;
  OwnedPinned pinned_[kStaging];
  OwnedEvent pinnedFree_[kStaging];
  int nextPinned_ = 0;

  std::vector<std::unique_ptr<LayerSlot>> slots_;
  size_t maxSlots_ = 2;
  uint64_t useClock_ = 0;
  bool embedded_ = false;

  double lastComputeMs_ = 0, lastTransferMs_ = 0, lastOverlapMs_ = 0;
  std::atomic<bool> cancelled_{false};
};

}  // namespace shortgpt::cuda
