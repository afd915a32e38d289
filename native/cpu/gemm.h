// The CPU GEMM used for every linear layer: Y[M x N] (+)= X[M x K] * W^T, where X is the
// activations (row-major f32, M tokens) and W a weight in Hugging Face's [out_features N,
// in_features K] layout, stored in the checkpoint as F32, F16 or BF16. W is converted to f32
// once per layer while it is packed into panels for the micro-kernel, so no whole-model f32
// copy exists. Results are bit-identical for any thread count (each output element is computed
// by exactly one thread, with a K loop order that does not depend on the partition).
#pragma once
#include <cstdint>
#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "cpu/weight_rows.h"

namespace shortgpt {

// Which micro-kernel runs: Auto picks AVX-512 where the CPU has AVX-512F and the AVX2 kernels
// are allowed (useAvx2Kernels()) unless SHORTGPT_NO_AVX512=1, else AVX2/FMA, else portable;
// tests and benchmarks force one. Each kernel is bit-identical across thread counts; AVX-512 and
// AVX2 are bit-identical to each other (same FMAs per element); portable differs in rounding.
enum class GemmKernel { Auto, Avx2, Portable, Avx512 };

// The kernel Auto resolves to now: "avx512", "avx2-fma" or "portable".
const char* gemmKernelName();

// Storage for packed weights: 64-byte aligned, so panel rows start on cache lines; blocks of
// 1 MiB or more are 2 MiB aligned and advised as transparent huge pages, because fresh memory
// costs page faults (about 20 us per 4 KiB page on the VMs we measured, and the first touch of
// a never-used page is slower still), often more than the packing itself. Freed blocks of 2 MiB
// and more are kept in a process-wide cache of at most 1 GiB and handed out again for requests
// of the same rounded size (the next session's layer weights and activations), so
// only the first session in a process pays for fresh pages. A request the cache cannot serve
// empties it first (new shapes), so cached blocks never sit beside a session's own; after the
// last session is disposed the cache still holds its blocks (at most 1 GiB).
// Elements are default-initialised (not zeroed): pack() writes every one.
void* allocatePackedStorage(size_t bytes);
void freePackedStorage(void* p, size_t bytes);

template <typename T>
struct CacheAlignedAllocator {
  using value_type = T;
  CacheAlignedAllocator() = default;
  template <typename U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocatePackedStorage(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { freePackedStorage(p, n * sizeof(T)); }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      ::new (static_cast<void*>(p)) U;  // default-init: no zeroing pass over fresh memory
    } else {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  }
  template <typename U>
  bool operator==(const CacheAlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheAlignedAllocator<U>&) const { return false; }
};

class PackedWeight {
 public:
  PackedWeight() = default;
  int64_t rows() const { return n_; }  // N, out_features
  int64_t cols() const { return k_; }  // K, in_features
  bool empty() const { return n_ == 0; }
  size_t bytes() const { return data_.size() * sizeof(float); }

  // Packs `src` ([N, K] row-major, dtype `dtype`). Rows [rowBegin, rowBegin + N) of a larger
  // matrix can be packed by offsetting `src` (used to split fused projections such as W_pack).
  static PackedWeight pack(const void* src, DType dtype, int64_t n, int64_t k, ThreadPool& pool);

  // Fills dst ([rows, K] row-major f32) with rows [row0, row0 + rows) of W. Called concurrently
  // from pool threads for disjoint row ranges, so it must be thread-safe.
  using RowSource = std::function<void(int64_t row0, int64_t rows, float* dst)>;
  // Packs W [n, k] into this object's storage, reusing it when it is large enough: a caller that
  // packs one layer after another into the same objects pays the page faults of fresh memory
  // once, not every layer. Each thread fetches the 16 rows of a panel straight into an
  // L2-resident buffer and transposes them from there, so reading (e.g. pread from the page
  // cache) runs on every thread and the weight crosses memory once instead of via a staging copy.
  void repack(int64_t n, int64_t k, const RowSource& source, ThreadPool& pool);

 private:
  friend void gemm(const float*, int64_t, const PackedWeight&, float*, bool, ThreadPool&, GemmKernel);
  int64_t n_ = 0, k_ = 0;
  std::vector<float, CacheAlignedAllocator<float>> data_;  // layout private to gemm.cc
};

// Y[M, N] = X[M, K] * W^T (accumulate=false) or Y += X * W^T (accumulate=true).
// X row stride is K, Y row stride is N.
void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, bool accumulate, ThreadPool& pool);
// The same with a chosen micro-kernel (tests and benchmarks).
void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, bool accumulate, ThreadPool& pool,
          GemmKernel kernel);

// The same product on a weight read where it lies (cpu/weight_rows.h: checkpoint tensors mapped
// from their files), packed slice by slice as the tiles need it (gemm_streamed.cc), with no
// weight-sized packed copy. Bit-identical to gemm() on PackedWeight::pack of the same rows.
// Returns false when a weight value it read was NaN or +-Inf (Y then holds garbage): the caller
// finds the first one in order and reports it, as packing would.
bool gemmStreamed(const float* x, int64_t m, const WeightRows& w, float* y, bool accumulate, ThreadPool& pool,
                  GemmKernel kernel = GemmKernel::Auto);

}  // namespace shortgpt
