// Fast mode's GEMM (gemm_bf16.h), all but the tile loop (gemm_bf16_driver.cc): feature
// detection, weight packing into bf16 pair panels, activation conversion, the pieces the driver
// shares with the micro-kernels of gemm_bf16_amx.cc and gemm_bf16_avx512.cc.
#include "cpu/gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(SHORTGPT_X86)
#include <cpuid.h>
#endif

#include "cpu/gemm_bf16_kernels.h"
#include "cpu/ops.h"

namespace shortgpt {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t roundUp(int64_t a, int64_t b) { return ceilDiv(a, b) * b; }


struct Bf16Support {
  bool avx512bf16 = false;
  bool amx = false;
  std::string amxWhyNot;  // why AMX is not used, where the CPU has it
  std::string whyNone;    // why no BF16 kernel is available
};

#if defined(SHORTGPT_X86)
uint64_t readXcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

const Bf16Support& support() {
  static const Bf16Support s = [] {
    Bf16Support r;
#if defined(SHORTGPT_X86)
    unsigned a = 0, b = 0, c = 0, d = 0;
    __get_cpuid(1, &a, &b, &c, &d);
    const bool osxsave = (c >> 27) & 1u;
    const uint64_t xcr0 = osxsave ? readXcr0() : 0;
    const bool osAvx512 = (xcr0 & 0xe6) == 0xe6;  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
    const bool osAmx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0, bx = 0, cx = 0, dx = 0;
    if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7)) __get_cpuid_count(7, 1, &a71, &bx, &cx, &dx);
    const bool avx512f = (b7 >> 16) & 1u, avx512bw = (b7 >> 30) & 1u;
    const bool avx512bf16 = (a71 >> 5) & 1u;
    const bool amxBf16 = (d7 >> 22) & 1u, amxTile = (d7 >> 24) & 1u;
    r.avx512bf16 = osAvx512 && avx512f && avx512bw && avx512bf16;
    if (amxBf16 && amxTile) {
      if (!osAmx) {
        r.amxWhyNot = "the OS does not enable the AMX tile state (XCR0)";
      } else if (!(osAvx512 && avx512f)) {
        r.amxWhyNot = "AVX-512 is not enabled by the OS";
      } else {
        r.amxWhyNot = amxRequestPermission();
        r.amx = r.amxWhyNot.empty();
      }
    }
    if (!r.amx && !r.avx512bf16) {
      r.whyNone = "this CPU has neither AMX-BF16 nor AVX512-BF16";
      if (!r.amxWhyNot.empty()) r.whyNone = "this CPU has AMX-BF16 but " + r.amxWhyNot + ", and no AVX512-BF16";
      else if (avx512bf16 && !osAvx512) r.whyNone = "this CPU has AVX512-BF16 but the OS does not enable AVX-512 state";
    }
#else
    r.whyNone = "BF16 kernels exist for x86-64 only (AMX-BF16 or AVX512-BF16)";
#endif
    return r;
  }();
  return s;
}

// SHORTGPT_NO_BF16=1 (read per call) hides every BF16 kernel: tests of the "unavailable" path
// (ERR_PRECISION_UNAVAILABLE) on machines that have them.
bool disabledByEnv() {
  const char* off = std::getenv("SHORTGPT_NO_BF16");
  return off != nullptr && std::strcmp(off, "1") == 0;
}

// SHORTGPT_NO_AMX=1 (read per call) makes Auto prefer AVX512-BF16 where the CPU has both: to
// measure and test the kernel that CPUs without AMX (Zen 4/5) run.
bool amxPreferred() {
  const char* off = std::getenv("SHORTGPT_NO_AMX");
  const bool noAmx = off != nullptr && std::strcmp(off, "1") == 0;
  return support().amx && !(noAmx && support().avx512bf16);
}

Bf16Kernel resolve(Bf16Kernel kernel) {
  if (kernel == Bf16Kernel::Auto) return amxPreferred() ? Bf16Kernel::Amx : Bf16Kernel::Avx512Bf16;
  return kernel;
}

}  // namespace

void convertRowsBf16(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t kp, uint16_t* out) {
#if defined(SHORTGPT_X86)
  if (support().avx512bf16 || support().amx) {  // every CPU with AMX has AVX-512F/BW
    convertRowsToBf16Avx512(x, ldx, rows, k, kp, out);
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < kp; ++j) out[r * kp + j] = j < k ? f32ToBf16(x[r * ldx + j]) : 0;
  }
}

bool stagePanelBf16(const uint16_t* const rows[16], int64_t valid, int64_t kc, uint16_t* panel) {
#if defined(SHORTGPT_X86)
  if (support().avx512bf16 || support().amx) return stagePanelAvx512(rows, valid, kc, panel);
#endif
  bool finite = true;
  for (int64_t q = 0; q < kc / 2; ++q) {
    for (int c = 0; c < 16; ++c) {
      for (int64_t e = 0; e < 2; ++e) {
        const int64_t j = 2 * q + e;
        uint16_t v = 0;
        if (rows[c] && j < valid) std::memcpy(&v, rows[c] + j, sizeof v);
        finite = finite && (v & 0x7f80u) != 0x7f80u;
        panel[q * 32 + c * 2 + e] = v;
      }
    }
  }
  return finite;
}

Bf16MicroKernel bf16MicroKernel(Bf16Kernel kernel) {
  if (!bf16KernelAvailable(kernel)) {
    throw std::runtime_error(std::string("the requested BF16 GEMM kernel cannot run here: ") +
                             (bf16Unavailable().empty() ? support().amxWhyNot : bf16Unavailable()));
  }
#if defined(SHORTGPT_X86)
  return resolve(kernel) == Bf16Kernel::Amx ? gemmBf16KernelAmx : gemmBf16KernelAvx512;
#else
  return nullptr;  // unreachable: no kernel is available off x86-64
#endif
}

const uint16_t* convertActivationsBf16(const float* x, int64_t m, int64_t k, int64_t kp, int64_t lda, ThreadPool& pool) {
  const int64_t blocks = ceilDiv(m, kBf16Rows), mPad = blocks * kBf16Rows;
  thread_local std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> abuf;
  if (abuf.size() < static_cast<size_t>(mPad * lda)) {
    abuf.clear();
    abuf.resize(static_cast<size_t>(mPad * lda));
  }
  uint16_t* a = abuf.data();
  pool.parallelFor(blocks, [&](int64_t begin, int64_t end, int) {
    for (int64_t bl = begin; bl < end; ++bl) {
      const int64_t r0 = bl * kBf16Rows, rows = std::min<int64_t>(kBf16Rows, m - r0);
      for (int64_t r = r0; r < r0 + rows; ++r) convertRowsBf16(x + r * k, k, 1, k, kp, a + r * lda);
      std::fill(a + (r0 + rows) * lda, a + (r0 + kBf16Rows) * lda, uint16_t{0});
    }
  });
  return a;
}

void storeBf16Tile(const float* c, int64_t rows, int64_t cols, const float* base, float* y, int64_t ldy, bool accumulate) {
  for (int64_t i = 0; i < rows; ++i) {
    float* yr = y + i * ldy;
    const float* cr = c + i * kBf16Cols;
    if (base) {
      const float* br = base + i * ldy;
      for (int64_t j = 0; j < cols; ++j) yr[j] = br[j] + cr[j];
    } else if (accumulate) {
      for (int64_t j = 0; j < cols; ++j) yr[j] += cr[j];
    } else {
      std::memcpy(yr, cr, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}

void swigluTileToBf16(const float* c, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo) {
#if defined(SHORTGPT_X86)
  if (support().avx512bf16 || support().amx) {
    swigluTileToBf16Avx512(c, rows, cols, out, ldo);
    return;
  }
#endif
  const SwigluSpanFn span = swigluSpanFn();
  float o[16];
  for (int64_t i = 0; i < rows; ++i) {
    span(c + i * kBf16Cols, c + i * kBf16Cols + 16, o, cols);
    convertRowsBf16(o, cols, 1, cols, cols, out + i * ldo);
  }
}

std::vector<std::string> bf16KernelsAvailable() {
  std::vector<std::string> names;
  if (disabledByEnv()) return names;
  if (support().amx) names.push_back("amx-bf16");
  if (support().avx512bf16) names.push_back("avx512-bf16");
  return names;
}

std::string bf16Unavailable() {
  if (disabledByEnv() && support().whyNone.empty()) return "the BF16 kernels are disabled by SHORTGPT_NO_BF16=1";
  return support().whyNone;
}

const char* bf16KernelName() {
  if (disabledByEnv()) return "";
  if (amxPreferred()) return "amx-bf16";
  if (support().avx512bf16) return "avx512-bf16";
  return "";
}

bool bf16KernelAvailable(Bf16Kernel kernel) {
  if (disabledByEnv()) return false;
  switch (kernel) {
    case Bf16Kernel::Amx: return support().amx;
    case Bf16Kernel::Avx512Bf16: return support().avx512bf16;
    default: return support().amx || support().avx512bf16;
  }
}

PackedWeightBf16 PackedWeightBf16::pack(const void* src, DType dtype, int64_t n, int64_t k, ThreadPool& pool) {
  PackedWeightBf16 w;
  const unsigned char* bytes = static_cast<const unsigned char*>(src);
  const size_t elem = dtypeSize(dtype);
  const ConvertToF32Fn convert = converterToF32(dtype);
  w.repack(n, k, [&](int64_t row0, int64_t rows, float* dst) {
    convert(bytes + static_cast<size_t>(row0 * k) * elem, dst, static_cast<size_t>(rows * k));
  }, pool);
  return w;
}

void PackedWeightBf16::repack(int64_t n, int64_t k, const PackedWeight::RowSource& source, ThreadPool& pool) {
  const int64_t kk = std::max<int64_t>(k, 0), kp = roundUp(kk, 32);
  repackPanels(n, k, [&](int64_t row0, int64_t valid, uint16_t* rowsBf16) {
    thread_local std::vector<float> rowsBuf;
    if (rowsBuf.size() < static_cast<size_t>(16 * kk)) rowsBuf.resize(static_cast<size_t>(16 * kk));
    source(row0, valid, rowsBuf.data());
    convertRowsBf16(rowsBuf.data(), kk, valid, kk, kp, rowsBf16);
  }, pool);
}

void PackedWeightBf16::repackBf16(int64_t n, int64_t k, const RowSourceBf16& source, ThreadPool& pool) {
  const int64_t kk = std::max<int64_t>(k, 0), kp = roundUp(kk, 32);
  repackPanels(n, k, [&](int64_t row0, int64_t valid, uint16_t* rowsBf16) {
    source(row0, valid, rowsBf16, kp);
    if (kp > kk) {
      for (int64_t r = 0; r < valid; ++r) std::fill(rowsBf16 + r * kp + kk, rowsBf16 + (r + 1) * kp, uint16_t{0});
    }
  }, pool);
}

void PackedWeightBf16::repackPanels(int64_t n, int64_t k, const std::function<void(int64_t, int64_t, uint16_t*)>& rows,
                                    ThreadPool& pool) {
  n_ = std::max<int64_t>(n, 0);
  k_ = std::max<int64_t>(k, 0);
  kp_ = roundUp(k_, 32);
  data_.clear();
  if (n_ == 0 || k_ == 0) return;
  // An even number of panels: the kernels always read two; the last may be all zeros.
  const int64_t panels = 2 * ceilDiv(n_, 32);
  data_.resize(static_cast<size_t>(panels * kp_ * 16));
  uint16_t* out = data_.data();
  const int64_t kp = kp_, nn = n_;
  pool.parallelFor(panels, [&](int64_t begin, int64_t end, int) {
    thread_local std::vector<uint16_t> rowsBf16;
    if (rowsBf16.size() < static_cast<size_t>(16 * kp)) rowsBf16.resize(static_cast<size_t>(16 * kp));
    for (int64_t p = begin; p < end; ++p) {
      uint16_t* panel = out + p * kp * 16;
      const int64_t valid = std::max<int64_t>(0, std::min<int64_t>(16, nn - p * 16));
      if (valid == 0) {
        std::fill(panel, panel + kp * 16, uint16_t{0});
        continue;
      }
      // Rows in bf16 (zero-padded to kp), then into k pairs; rows past n are zeros. (NaN/Inf
      // were checked by the row source, on the values it converted.)
      rows(p * 16, valid, rowsBf16.data());
      const uint16_t* rowPtrs[16];
      for (int64_t c = 0; c < 16; ++c) rowPtrs[c] = c < valid ? rowsBf16.data() + c * kp : nullptr;
      stagePanelBf16(rowPtrs, kp, kp, panel);
    }
  });
}

}  // namespace shortgpt
