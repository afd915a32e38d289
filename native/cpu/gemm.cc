// Packed, cache-blocked, multithreaded GEMM: Y[M, N] (+)= X[M, K] * W^T (see gemm.h).
//
// Packing: W [N, K] (F32/F16/BF16) becomes ceil(N/16) panels; panel p holds rows 16p..16p+15 of
// W transposed, i.e. K rows of 16 floats ([k][16], zero-padded past N), so the micro-kernel reads
// its 16 columns for one k with two aligned vector loads.
//
// Blocking (BLIS-style, X left unpacked): the output is cut into tiles of about kMC rows (a
// multiple of 6) x up to 16 panels, of nearly equal size; threads claim tiles one at a time.
// Inside a tile, K is walked in fixed kKC slices; for each slice and panel, the kc x 16 panel
// slice stays in L1 while the micro-kernel sweeps the tile's rows 6 at a time, whose kc-wide
// stripe of X stays in L2; the next panel slice is prefetched a share per micro-tile while the
// rows are swept (see runTile). Micro-kernels (gemm_kernels.h): AVX-512 (two panels per call,
// gemm_avx512.cc), AVX2/FMA (one panel, gemm_avx2.cc, also the odd last panel of an AVX-512 tile),
// portable (vector extensions, below), chosen per call by resolve().
//
// Determinism: an element of Y is the sum over k of x*w in k order within each fixed kKC slice,
// added slice by slice into Y, always by one thread. Neither the tile shape nor the thread count
// enters that order, so results are bit-identical for any thread count.
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cpu/cpu_features.h"
#include "cpu/gemm_kernels.h"

namespace shortgpt {

namespace {

// Block sizes, measured on Zen 5 (48 KiB L1d, 1 MiB L2): KC 128..384 and MC 96..192 all land
// within a few percent of each other; these sit in the middle.
constexpr int64_t kKC = kGemmKC;
constexpr int64_t kMC = 96;   // rows per tile: a 96 x 256 stripe of X is 96 KiB of L2
constexpr int64_t kPanelsPerTile = 16;  // at most 256 output columns per tile

// The portable micro-kernel: the tile as two 8-column halves, each with up to 6 x 2 four-lane
// accumulators (12 SSE/NEON registers), in GCC/Clang vector extensions, which every target
// lowers to its own SIMD (or to scalar code). Named accumulators, as in gemm_avx2.cc.
#if defined(__GNUC__)
typedef float V4 __attribute__((vector_size(16)));
inline V4 load4(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, V4 v) { std::memcpy(p, &v, sizeof v); }

inline void storeHalfRow(float* row, V4 lo, V4 hi, int cols, bool add) {
  if (cols == 8) {
    if (add) {
      lo += load4(row);
      hi += load4(row + 4);
    }
    store4(row, lo);
    store4(row + 4, hi);
    return;
  }
  float tile[8];
  store4(tile, lo);
  store4(tile + 4, hi);
  for (int j = 0; j < cols; ++j) row[j] = add ? row[j] + tile[j] : tile[j];
}

template <int MR>
void portableHalf(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int cols, bool add) {
  const V4 zero = {0, 0, 0, 0};
  V4 c0l = zero, c0h = zero, c1l = zero, c1h = zero, c2l = zero, c2h = zero;
  V4 c3l = zero, c3h = zero, c4l = zero, c4h = zero, c5l = zero, c5h = zero;
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  const float* a4 = a + 4 * lda;
  const float* a5 = a + 5 * lda;
#define SHORTGPT_ROW(i)                                     \
  if constexpr (MR > i) {                                   \
    const float s = a##i[k];                                \
    const V4 ai = {s, s, s, s};                             \
    c##i##l += ai * b0;                                     \
    c##i##h += ai * b1;                                     \
  }
  for (int64_t k = 0; k < kc; ++k) {
    const V4 b0 = load4(b + k * kGemmNR), b1 = load4(b + k * kGemmNR + 4);
    SHORTGPT_ROW(0)
    SHORTGPT_ROW(1)
    SHORTGPT_ROW(2)
    SHORTGPT_ROW(3)
    SHORTGPT_ROW(4)
    SHORTGPT_ROW(5)
  }
#undef SHORTGPT_ROW
  storeHalfRow(c, c0l, c0h, cols, add);
  if constexpr (MR > 1) storeHalfRow(c + ldc, c1l, c1h, cols, add);
  if constexpr (MR > 2) storeHalfRow(c + 2 * ldc, c2l, c2h, cols, add);
  if constexpr (MR > 3) storeHalfRow(c + 3 * ldc, c3l, c3h, cols, add);
  if constexpr (MR > 4) storeHalfRow(c + 4 * ldc, c4l, c4h, cols, add);
  if constexpr (MR > 5) storeHalfRow(c + 5 * ldc, c5l, c5h, cols, add);
}

template <int MR>
void portableTile(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int nr, bool add) {
  portableHalf<MR>(kc, a, lda, b, c, ldc, std::min(nr, 8), add);
  if (nr > 8) portableHalf<MR>(kc, a, lda, b + 8, c + 8, ldc, nr - 8, add);
}
#else
template <int MR>
void portableTile(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int nr, bool add) {
  float acc[MR][kGemmNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * kGemmNR;
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i * lda + k];
      for (int j = 0; j < kGemmNR; ++j) acc[i][j] += ai * bk[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < nr; ++j) row[j] = add ? row[j] + acc[i][j] : acc[i][j];
  }
}
#endif

void gemmMicroKernelPortable(int mr, int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                             int64_t ldc, int nr, bool add) {
  switch (mr) {
    case 6: portableTile<6>(kc, a, lda, b, c, ldc, nr, add); break;
    case 5: portableTile<5>(kc, a, lda, b, c, ldc, nr, add); break;
    case 4: portableTile<4>(kc, a, lda, b, c, ldc, nr, add); break;
    case 3: portableTile<3>(kc, a, lda, b, c, ldc, nr, add); break;
    case 2: portableTile<2>(kc, a, lda, b, c, ldc, nr, add); break;
    default: portableTile<1>(kc, a, lda, b, c, ldc, nr, add); break;
  }
}

bool avx512Allowed() {
#if defined(SHORTGPT_X86)
  const char* off = std::getenv("SHORTGPT_NO_AVX512");
  return cpuFeatures().avx512f && cpuFeatures().avx2 && cpuFeatures().fma && (off == nullptr || std::strcmp(off, "1") != 0);
#else
  return false;
#endif
}

GemmKernel resolve(GemmKernel kernel) {
  if (kernel == GemmKernel::Auto) {
    if (!useAvx2Kernels()) return GemmKernel::Portable;
    return avx512Allowed() ? GemmKernel::Avx512 : GemmKernel::Avx2;
  }
  // A forced kernel the CPU cannot run falls back to the next one down.
#if defined(SHORTGPT_X86)
  if (kernel == GemmKernel::Avx512 && !cpuFeatures().avx512f) kernel = GemmKernel::Avx2;
  if (kernel == GemmKernel::Avx2 && !(cpuFeatures().avx2 && cpuFeatures().fma)) kernel = GemmKernel::Portable;
  return kernel;
#else
  return GemmKernel::Portable;
#endif
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A read prefetch into all cache levels (a no-op where the compiler has no builtin).
inline void prefetchLine(const float* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

}  // namespace

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kBlockCacheCap = size_t{1} << 30;

// Alignment and rounded size of a block of `bytes`: from 1 MiB up, whole 2 MiB huge pages (at
// most 1 MiB wasted per block, and page faults drop 512-fold).
size_t blockAlign(size_t bytes) { return bytes >= kHugePage / 2 ? kHugePage : 64; }
size_t blockSize(size_t bytes) {
  const size_t align = blockAlign(bytes);
  return std::max<size_t>(64, (bytes + align - 1) / align * align);
}

// Freed huge-page blocks, oldest first (see allocatePackedStorage in gemm.h). Never destroyed,
// so a block freed during static destruction still finds it.
struct BlockCache {
  std::mutex mutex;
  std::vector<std::pair<void*, size_t>> blocks;
  size_t bytes = 0;
};
BlockCache& blockCache() {
  static BlockCache* cache = new BlockCache;
  return *cache;
}

}  // namespace

void* allocatePackedStorage(size_t bytes) {
  const size_t align = blockAlign(bytes), size = blockSize(bytes);
  if (align == kHugePage) {
    BlockCache& c = blockCache();
    std::lock_guard<std::mutex> lock(c.mutex);
    // A cached block of exactly this (rounded) size, newest first: same-shaped layers and
    // sessions ask for the same sizes, and an exact match keeps free()'s size right.
    size_t best = c.blocks.size();
    for (size_t i = c.blocks.size(); i-- > 0;) {
      if (c.blocks[i].second == size) {
        best = i;
        break;
      }
    }
    if (best != c.blocks.size()) {
      void* p = c.blocks[best].first;
      c.bytes -= c.blocks[best].second;
      c.blocks.erase(c.blocks.begin() + static_cast<std::ptrdiff_t>(best));
      return p;
    }
    // A miss means new shapes (another model, or the lm_head after the layers): what is cached
    // would only sit beside the new blocks, so give it back first.
    for (const auto& b : c.blocks) std::free(b.first);
    c.blocks.clear();
    c.bytes = 0;
  }
  void* p = nullptr;
  if (posix_memalign(&p, align, size) != 0 || p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugePage) madvise(p, size, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
  return p;
}

void freePackedStorage(void* p, size_t bytes) {
  if (p == nullptr) return;
  const size_t size = blockSize(bytes);
  if (blockAlign(bytes) != kHugePage || size > kBlockCacheCap) {
    std::free(p);
    return;
  }
  BlockCache& c = blockCache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.blocks.emplace_back(p, size);
  c.bytes += size;
  while (c.bytes > kBlockCacheCap) {
    std::free(c.blocks.front().first);
    c.bytes -= c.blocks.front().second;
    c.blocks.erase(c.blocks.begin());
  }
}

GemmKernels gemmKernels(GemmKernel kernel) {
  GemmKernels k{gemmMicroKernelPortable, nullptr};
#if defined(SHORTGPT_X86)
  const GemmKernel chosen = resolve(kernel);
  if (chosen == GemmKernel::Avx2 || chosen == GemmKernel::Avx512) k.micro = gemmMicroKernelAvx2;
  if (chosen == GemmKernel::Avx512) k.pair = gemmPairKernelAvx512;
#else
  (void)kernel;  // only the portable kernel exists here
#endif
  return k;
}

namespace {
void transposeToPanelPortable(const float* rows, int64_t ld, int64_t kb, float* block) {
  for (int64_t kk = 0; kk < kb; ++kk) {
    for (int c = 0; c < kGemmNR; ++c) block[kk * kGemmNR + c] = rows[c * ld + kk];
  }
}
}  // namespace

TransposeToPanelFn transposeToPanelFn() {
#if defined(SHORTGPT_X86)
  if (cpuFeatures().avx2 && cpuFeatures().fma && useAvx2Kernels()) return transposeToPanelAvx2;
#endif
  return transposeToPanelPortable;
}

const char* gemmKernelName() {
  switch (resolve(GemmKernel::Auto)) {
    case GemmKernel::Avx512: return "avx512";
    case GemmKernel::Avx2: return "avx2-fma";
    default: return "portable";
  }
}

PackedWeight PackedWeight::pack(const void* src, DType dtype, int64_t n, int64_t k, ThreadPool& pool) {
  PackedWeight w;
  w.n_ = n;
  w.k_ = k;
  if (n <= 0 || k <= 0) return w;
  const int64_t panels = ceilDiv(n, kGemmNR);
  w.data_.resize(static_cast<size_t>(panels * k * kGemmNR));
  const unsigned char* bytes = static_cast<const unsigned char*>(src);
  const size_t elem = dtypeSize(dtype);
  float* out = w.data_.data();
  // Per panel, blocks of kPackKB columns: convert the 16 rows' pieces into a row-major scratch
  // (contiguous reads of the checkpoint), then transpose the L1-resident scratch into the panel.
  constexpr int64_t kPackKB = 128;
  const ConvertToF32Fn convert = converterToF32(dtype);
  const TransposeToPanelFn transpose = transposeToPanelFn();
  pool.parallelFor(panels, [&](int64_t begin, int64_t end, int) {
    std::vector<float> scratch(static_cast<size_t>(kGemmNR * kPackKB));
    for (int64_t p = begin; p < end; ++p) {
      float* panel = out + p * k * kGemmNR;
      const int valid = static_cast<int>(std::min<int64_t>(kGemmNR, n - p * kGemmNR));
      for (int64_t k0 = 0; k0 < k; k0 += kPackKB) {
        const int64_t kb = std::min(kPackKB, k - k0);
        for (int c = 0; c < kGemmNR; ++c) {
          float* dst = scratch.data() + c * kPackKB;
          if (c < valid) {
            const int64_t r = p * kGemmNR + c;
            convert(bytes + static_cast<size_t>(r * k + k0) * elem, dst, static_cast<size_t>(kb));
          } else {
            std::fill(dst, dst + kb, 0.0f);
          }
        }
        transpose(scratch.data(), kPackKB, kb, panel + k0 * kGemmNR);
      }
    }
  });
  return w;
}

void PackedWeight::repack(int64_t n, int64_t k, const RowSource& source, ThreadPool& pool) {
  n_ = std::max<int64_t>(n, 0);
  k_ = std::max<int64_t>(k, 0);
  if (n_ == 0 || k_ == 0) {
    data_.clear();
    return;
  }
  const int64_t panels = ceilDiv(n, kGemmNR);
  // clear() keeps the capacity, and resize() then default-initialises (no zeroing, no copy of
  // the previous layer's values): same-shaped layers reuse the same pages.
  data_.clear();
  data_.resize(static_cast<size_t>(panels * k * kGemmNR));
  float* out = data_.data();
  constexpr int64_t kPackKB = 128;
  const TransposeToPanelFn transpose = transposeToPanelFn();
  pool.parallelFor(panels, [&](int64_t begin, int64_t end, int) {
    // Per thread, kept across calls (pool threads live as long as the pool): 16 rows of W.
    thread_local std::vector<float> rowsBuf;
    if (rowsBuf.size() < static_cast<size_t>(kGemmNR * k)) rowsBuf.resize(static_cast<size_t>(kGemmNR * k));
    float* rowsF32 = rowsBuf.data();
    for (int64_t p = begin; p < end; ++p) {
      float* panel = out + p * k * kGemmNR;
      const int64_t valid = std::min<int64_t>(kGemmNR, n - p * kGemmNR);
      source(p * kGemmNR, valid, rowsF32);
      if (valid < kGemmNR) std::fill(rowsF32 + valid * k, rowsF32 + kGemmNR * k, 0.0f);
      for (int64_t k0 = 0; k0 < k; k0 += kPackKB) {
        transpose(rowsF32 + k0, k, std::min(kPackKB, k - k0), panel + k0 * kGemmNR);
      }
    }
  });
}

void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, bool accumulate, ThreadPool& pool) {
  gemm(x, m, w, y, accumulate, pool, GemmKernel::Auto);
}

void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, bool accumulate, ThreadPool& pool,
          GemmKernel kernel) {
  const int64_t n = w.n_, k = w.k_;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum
    if (!accumulate) std::fill(y, y + m * n, 0.0f);
    return;
  }
  const GemmKernels kernels = gemmKernels(kernel);
  const GemmMicroKernel micro = kernels.micro;
  const GemmPairKernel pair = kernels.pair;  // two panels per call where available
  const float* packed = w.data_.data();
  const int64_t panels = ceilDiv(n, kGemmNR);
  const int64_t microRows = ceilDiv(m, kGemmMR);
  const int threads = pool.threads();
  // Tile counts, then tiles of (nearly) equal size, so that equal runs of tiles are equal work.
  int64_t tilesM = std::min(microRows, ceilDiv(m, kMC));
  int64_t tilesN = ceilDiv(panels, kPanelsPerTile);
  // Narrower tiles when there are too few to keep every thread busy (small M, e.g. one token).
  while (tilesM * tilesN < 4 * threads && tilesN < panels) tilesN = std::min(panels, tilesN * 2);
  // A tile count that is a multiple of the thread count, where there are rows to spare, so that
  // on an idle machine no thread waits for a last odd tile.
  for (int step = 0; step < threads && (tilesM * tilesN) % threads != 0 && tilesM < microRows; ++step) ++tilesM;

  // Tiles are numbered column-block-major, and threads claim them in that order from a shared
  // counter: the threads then work on neighbouring tiles of one column block at a time, so W (the
  // large operand) streams from memory about once, and a thread slowed by other work on the
  // machine simply claims fewer tiles. Which thread computes a tile never changes its values.
  const int64_t tiles = tilesM * tilesN;
  std::atomic<int64_t> nextTile{0};
  auto runTile = [&](int64_t t) {
    const int64_t mb = t % tilesM, nb = t / tilesM;
    const int64_t i0 = kGemmMR * (microRows * mb / tilesM);
    const int64_t i1 = std::min(m, kGemmMR * (microRows * (mb + 1) / tilesM));
    // With the pair kernel, tiles hold whole pairs of panels where possible: an odd panel would
    // run through the single-panel AVX2 kernel at half the width. (Values are the same either
    // way: the kernels are bit-identical column by column.)
    const int64_t unit = pair != nullptr ? 2 : 1, units = ceilDiv(panels, unit);
    const int64_t p0 = std::min(panels, unit * (units * nb / tilesN));
    const int64_t p1 = std::min(panels, unit * (units * (nb + 1) / tilesN));
    const int64_t micros = ceilDiv(i1 - i0, kGemmMR);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const bool add = accumulate || pc > 0;
      for (int64_t p = p0; p < p1;) {
        const float* b = packed + (p * k + pc) * kGemmNR;
        float* c = y + p * kGemmNR;
        const bool twoPanels = pair != nullptr && p + 1 < p1;  // panel p is full, since panel p+1 exists
        // While the rows are swept, the next panel slice(s) this tile needs (the next panels of
        // this K slice, else the first of the next slice) are prefetched, a share before each
        // micro-tile: without it the first micro-tile of every panel waits on L2/L3 for its
        // whole slice (measured: +5-15% on the M shapes). A hint only; values are unaffected.
        int64_t q = p + (twoPanels ? 2 : 1), qc = pc;
        if (q >= p1) {
          q = p0;
          qc = pc + kKC;
        }
        const bool ahead = qc < k;
        const int64_t lines = ahead ? std::min(kKC, k - qc) : 0;  // one 64-byte line per k row
        const int64_t per = ceilDiv(lines, micros);
        const float* nb0 = ahead ? packed + (q * k + qc) * kGemmNR : nullptr;
        const float* nb1 = ahead && pair != nullptr && q + 1 < p1 ? nb0 + k * kGemmNR : nullptr;
        int64_t line = 0;
        auto prefetchShare = [&] {
          for (const int64_t end = std::min(lines, line + per); line < end; ++line) {
            prefetchLine(nb0 + line * kGemmNR);
            if (nb1 != nullptr) prefetchLine(nb1 + line * kGemmNR);
          }
        };
        if (twoPanels) {
          const float* b1 = b + k * kGemmNR;
          const int nr1 = static_cast<int>(std::min<int64_t>(kGemmNR, n - (p + 1) * kGemmNR));
          for (int64_t i = i0; i < i1; i += kGemmMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kGemmMR, i1 - i));
            prefetchShare();
            pair(mr, kc, x + i * k + pc, k, b, b1, c + i * n, n, nr1, add);
          }
          p += 2;
          continue;
        }
        const int nr = static_cast<int>(std::min<int64_t>(kGemmNR, n - p * kGemmNR));
        for (int64_t i = i0; i < i1; i += kGemmMR) {
          const int mr = static_cast<int>(std::min<int64_t>(kGemmMR, i1 - i));
          prefetchShare();
          micro(mr, kc, x + i * k + pc, k, b, c + i * n, n, nr, add);
        }
        ++p;
      }
    }
  };
  pool.parallelFor(std::min<int64_t>(threads, tiles), [&](int64_t, int64_t, int) {
    for (int64_t t = nextTile.fetch_add(1, std::memory_order_relaxed); t < tiles;
         t = nextTile.fetch_add(1, std::memory_order_relaxed)) {
      runTile(t);
    }
  });
}

}  // namespace shortgpt
