// The CPU GEMM of fast mode (--precision bf16): Y[M, N] (+)= X[M, K] * W^T with both inputs
// rounded to BF16 (round to nearest even) and products accumulated in FP32, as the CUDA backend's
// tensor-core path does. W is converted to BF16 once, while it is packed; X is converted once per
// call. Two micro-kernels, chosen at run time: Intel AMX tiles (TDPBF16PS, gemm_bf16_amx.cc) where
// the CPU has AMX-BF16 and Linux grants the tile state, else AVX512-BF16 (VDPBF16PS,
// gemm_bf16_avx512.cc; Zen 4/5, Cooper Lake and later Xeons). Without either, fast mode is not
// offered (bf16Unavailable() says why): there is no slow emulation to fall back to silently.
//
// Determinism: each output element is computed by one thread, over fixed K slices taken in order
// (f32 partial sums kept exactly between slices), an order that does not depend on the partition,
// so results are bit-identical for any thread count (for a given kernel; AMX and AVX512-BF16 may
// differ in the last bits).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/weight_rows.h"

namespace shortgpt {

enum class Bf16Kernel { Auto, Amx, Avx512Bf16 };

// Which BF16 kernels this CPU (and OS) can run: "amx-bf16", "avx512-bf16" (best first).
// SHORTGPT_NO_BF16=1 (read per call) hides them all, to test the unavailable path.
std::vector<std::string> bf16KernelsAvailable();
// Empty when a BF16 kernel is available, else why not (for ERR_PRECISION_UNAVAILABLE).
std::string bf16Unavailable();
// The kernel Auto resolves to: "amx-bf16", "avx512-bf16" or "" (none). SHORTGPT_NO_AMX=1 makes
// Auto pick AVX512-BF16 where the CPU has both (to measure the kernel AMD CPUs run).
const char* bf16KernelName();
// Whether `kernel` can run here (Auto: whether any can).
bool bf16KernelAvailable(Bf16Kernel kernel);

// Round-to-nearest-even f32 -> bf16, NaN kept a (quiet) NaN; the scalar reference of the packers.
inline uint16_t f32ToBf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// A weight [N, K] packed for the BF16 kernels: panels of 16 output columns; within a panel, K
// (zero-padded to a multiple of 32) in pairs: element (k, c) at [(k / 2) * 32 + c * 2 + k % 2].
// This is the "VNNI" layout both TDPBF16PS (a B tile row is 16 columns x 2 k) and VDPBF16PS (a
// zmm holds 16 columns x 2 k) read directly.
class PackedWeightBf16 {
 public:
  int64_t rows() const { return n_; }
  int64_t cols() const { return k_; }
  int64_t paddedCols() const { return kp_; }
  bool empty() const { return n_ == 0; }
  size_t bytes() const { return data_.size() * sizeof(uint16_t); }
  // As PackedWeight::pack / repack (gemm.h); the source rows arrive in f32 and are rounded here.
  static PackedWeightBf16 pack(const void* src, DType dtype, int64_t n, int64_t k, ThreadPool& pool);
  void repack(int64_t n, int64_t k, const PackedWeight::RowSource& source, ThreadPool& pool);
  // Rows that are bf16 already (a BF16 checkpoint): source(row0, rows, dst, stride) writes `rows`
  // rows of k bf16 values, row r at dst + r * stride (stride = paddedCols() >= k; the padding is
  // zeroed here). No f32 round trip: the result equals repack() of the same rows widened to f32,
  // since bf16 -> f32 -> bf16 is exact.
  using RowSourceBf16 = std::function<void(int64_t row0, int64_t rows, uint16_t* dst, int64_t stride)>;
  void repackBf16(int64_t n, int64_t k, const RowSourceBf16& source, ThreadPool& pool);
  const uint16_t* data() const { return data_.data(); }

 private:
  // Sizes the storage and fills each 16-row panel: rows(p * 16, valid, rowsBf16) leaves the
  // panel's rows in bf16 at stride kp_ (zero-padded), which are then interleaved into k pairs.
  void repackPanels(int64_t n, int64_t k, const std::function<void(int64_t, int64_t, uint16_t*)>& rows, ThreadPool& pool);
  int64_t n_ = 0, k_ = 0, kp_ = 0;
  std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> data_;
};

// Activations already rounded to BF16, laid out as the tile loop reads them: row r's K values at
// data + r * lda, then zeros up to K rounded up to 32; rows allocated to a multiple of 32
// (bf16ActivationRows). The fused SwiGLU epilogue writes the down projection's input this way.
// Rows past m may hold anything finite-or-not: each output row reads only its own input row.
struct Bf16Activations {
  uint16_t* data = nullptr;
  int64_t lda = 0;
};
// The row stride for K values: K rounded up to 32, plus one cache line (at a power-of-two stride,
// kp = 2048: 4 KiB, the 16 rows an AMX tile load touches would all fall into one L1 set).
inline int64_t bf16ActivationStride(int64_t k) { return (std::max<int64_t>(k, 0) + 31) / 32 * 32 + 32; }
// Rows to allocate for m rows: the kernels read A in blocks of 32.
inline int64_t bf16ActivationRows(int64_t m) { return (std::max<int64_t>(m, 0) + 31) / 32 * 32; }

// Throws std::runtime_error when `kernel` cannot run here (callers check bf16KernelAvailable).
void gemmBf16(const float* x, int64_t m, const PackedWeightBf16& w, float* y, bool accumulate, ThreadPool& pool,
              Bf16Kernel kernel = Bf16Kernel::Auto);
// The same with X already in BF16 (as the fused SwiGLU leaves it): bit-identical to gemmBf16 on
// the f32 values that were rounded.
void gemmBf16(const Bf16Activations& x, int64_t m, const PackedWeightBf16& w, float* y, bool accumulate,
              ThreadPool& pool, Bf16Kernel kernel = Bf16Kernel::Auto);
// Y = base + X * W^T (base: rows of stride N, not Y itself): a residual add without copying the
// residual into Y first. Bit-identical to that copy followed by gemmBf16(..., accumulate = true).
void gemmBf16AddTo(const float* x, int64_t m, const PackedWeightBf16& w, const float* base, float* y, ThreadPool& pool,
                   Bf16Kernel kernel = Bf16Kernel::Auto);
// The gate|up projection with SwiGLU applied as the results are stored: W = [gate; up] (2 *
// inter rows, inter a multiple of 16), out row r, column i = bf16(silu(gate . x_r) * (up . x_r)),
// ready to be the down projection's input (out.lda >= bf16ActivationStride(inter); columns from
// inter to the stride are not written: zero them once). Each kernel call computes a 16-wide span
// of gate beside the same span of up, so the [m, 2 * inter] product is never written out and
// read back, nor the f32 [m, inter] result converted again. Bit-identical to gemmBf16 followed by
// swiglu (ops.h) and the down projection's own rounding.
void gemmBf16Swiglu(const float* x, int64_t m, const PackedWeightBf16& w, const Bf16Activations& out, ThreadPool& pool,
                    Bf16Kernel kernel = Bf16Kernel::Auto);

// gemmBf16Streamed: the same product on a weight read where it lies (cpu/weight_rows.h), packed
// as it goes: each tile converts the K slice of the 32 weight rows it is about to use into the
// pair layout in a buffer of its own (L1-sized), so the weight is never packed into a
// weight-sized buffer first: no pass that reads the tensors and writes them again before the
// GEMM, no memory for a packed copy. The slices are those of PackedWeightBf16 (same rounding,
// same zero padding), so results are bit-identical to gemmBf16 on the packed weight.
// Y (+)= X * W^T as gemmBf16. Returns false when some weight value it read was NaN or +-Inf
// (Y then holds garbage): the caller finds the first one in order and reports it, as packing would.
bool gemmBf16Streamed(const float* x, int64_t m, const WeightRows& w, float* y, bool accumulate, ThreadPool& pool,
                      Bf16Kernel kernel = Bf16Kernel::Auto);
bool gemmBf16Streamed(const Bf16Activations& x, int64_t m, const WeightRows& w, float* y, bool accumulate,
                      ThreadPool& pool, Bf16Kernel kernel = Bf16Kernel::Auto);

bool gemmBf16StreamedAddTo(const float* x, int64_t m, const WeightRows& w, const float* base, float* y,
                           ThreadPool& pool, Bf16Kernel kernel = Bf16Kernel::Auto);

// gemmBf16Swiglu on a weight read where it lies (any inter).
bool gemmBf16StreamedSwiglu(const float* x, int64_t m, const WeightRows& w, const Bf16Activations& out,
                            ThreadPool& pool, Bf16Kernel kernel = Bf16Kernel::Auto);

}  // namespace shortgpt
