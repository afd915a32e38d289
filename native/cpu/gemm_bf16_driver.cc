// The tile loop of fast mode's GEMM (gemm_bf16.h), for weights packed first (gemmBf16) and for
// weights read where they lie (gemmBf16Streamed: each tile packs the K slice it is about to use
// into a buffer that stays in cache, so a layer met by one batch is never packed as a whole).
//
// Why streaming: at the batch sizes a benchmark or a small calibration set runs (512 tokens),
// packing a layer was a quarter of fast mode's time on a BF16 checkpoint (Llama-3.2-1B's shape on
// 2 cores: ~13 ms of a 68 ms layer): pread copied the tensors out of the page cache, the
// interleave wrote a layer-sized packed copy to memory, and the GEMM read it back. Streamed, each
// weight byte is read once from the mapped file, interleaved into an L1-sized slice and used at
// once by every row block of the tile.
//
// Order of work in a tile (tb row blocks of 32 tokens x tp pairs of 16-column panels): for each
// K slice, the tile's tp panel-pair slices (staged, or pointed at in the packed weight), then
// every row block against them (streamed: while the next K slice's rows are prefetched into L2).
// Staged slices equal PackedWeightBf16's (same rounding, same zero padding) and K is walked in
// the same order, so every output is bit-identical whatever the source, tile shape or threads.
//
// The gate|up projection can store silu(gate) * up directly (SwiGLU fused, gemmBf16Swiglu /
// gemmBf16StreamedSwiglu): a pair then holds a 16-wide span of gate beside the same span of up,
// and the result goes out in bf16, as the down projection's tile loop reads it (Bf16Activations).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/dtype.h"
#include "core/finite.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_bf16_kernels.h"

namespace shortgpt {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int64_t kKc = 256;  // K slice (a multiple of 32)

// Tile shape: row blocks x panel pairs. A tile's C sums (tb x tp x 4 KiB) live in a buffer of the
// thread; its weight slices (tp x 16 KiB) are reused by all tb row blocks. Streamed, each slice is
// staged once per row tile, so tiles are tall: 16 x 4 (Llama-3.2-1B's shapes at 512 tokens: 2x8,
// 4x4, 8x2 and 16x1 were slower). Packed, a slice only has to be read: 2 x 8 keeps a row block's
// activations in L1 across 8 pairs (at 4 x 1024 tokens 2x8, 4x4, 4x8 and 8x4 measured level).
struct TileShape {
  int64_t blocks;
  int64_t pairs;
};

TileShape tileShape(bool streamed) {
  // SHORTGPT_BF16_TILE=BxP (read once) overrides both, to measure other shapes.
  static const TileShape forced = [] {
    TileShape t{0, 0};
    if (const char* v = std::getenv("SHORTGPT_BF16_TILE")) {
      long b = 0, p = 0;
      if (std::sscanf(v, "%ldx%ld", &b, &p) == 2 && b > 0 && p > 0 && b <= 256 && p <= 16) t = {b, p};
    }
    return t;
  }();
  if (forced.blocks > 0) return forced;
  return streamed ? TileShape{16, 4} : TileShape{2, 8};
}

// Row g of the stack, K values [k0, k0 + valid), as bf16 into out[0, kc) (zeros past valid).
// Returns false when a value is NaN or +-Inf. `f32` is kc floats of scratch.
bool stageRowBf16(const StackedRows& stack, int64_t g, int64_t k0, int64_t valid, int64_t kc, uint16_t* out, float* f32) {
  if (stack.dtype(g) == DType::BF16) {
    std::memcpy(out, stack.row(g, k0), static_cast<size_t>(valid) * sizeof(uint16_t));  // any alignment
    std::fill(out + valid, out + kc, uint16_t{0});
    return firstNonFiniteBf16(out, valid) < 0;
  }
  const bool finite = stack.rowF32(g, k0, valid, f32);  // copies: the file's f32 may be unaligned
  convertRowsBf16(f32, valid, 1, valid, kc, out);
  return finite;
}

// What a pair of panels holds and where its results go. Plain: pair q is W's rows
// [32q, 32q + 32) and columns [32q, 32q + 32) of Y. Gated (SwiGLU, W = [gate; up]): pair q is
// gate rows [16q, 16q + 16) beside the same up rows, so a kernel's C holds gate in columns 0..15
// and up in 16..31 for one 16-wide span of the intermediate, stored as bf16(silu(gate) * up).
struct PairLayout {
  bool gated = false;
  int64_t n = 0;      // W's rows
  int64_t inter = 0;  // gated: the intermediate size (n = 2 * inter)
  int64_t pairs() const { return gated ? ceilDiv(inter, 16) : ceilDiv(n, 32); }
  // The stacked row behind panel `half`'s row i of pair q, or -1 for a zero row.
  int64_t row(int64_t q, int64_t half, int64_t i) const {
    if (gated) return q * 16 + i < inter ? half * inter + q * 16 + i : -1;
    const int64_t r = q * 32 + half * 16 + i;
    return r < n ? r : -1;
  }
};

PairLayout plainLayout(int64_t n) {
  PairLayout l;
  l.n = n;
  return l;
}

PairLayout gatedLayout(int64_t n) {
  PairLayout l;
  l.gated = true;
  l.n = n;
  l.inter = n / 2;
  return l;
}

// Where a tile's panel slices come from: rows to stage (streamed), or a packed weight.
struct PanelSource {
  const StackedRows* rows = nullptr;
  const PackedWeightBf16* packed = nullptr;
};

// The activations: f32 rows (row stride K) to round once per call, or rows already in bf16.
struct ActivationSource {
  const float* x = nullptr;
  const Bf16Activations* bf16 = nullptr;
};

// Where results go: f32 rows of Y (plain layout, row stride N; base: Y = base + X W^T), or bf16
// rows (gated layout).
struct Output {
  float* y = nullptr;
  const Bf16Activations* act = nullptr;
  const float* base = nullptr;
};

// Y (+)= X W^T over `layout`; returns whether every staged weight was finite. No rows, no
// columns or K = 0 need no kernel: an empty sum (gated: silu(0) * 0) is 0.
bool tileGemm(const ActivationSource& in, int64_t m, int64_t k, const PanelSource& src, const PairLayout& layout,
              const Output& out, bool accumulate, ThreadPool& pool, Bf16Kernel kernel) {
  const int64_t n = layout.n, kp = ceilDiv(k, 32) * 32;
  const int64_t outCols = layout.gated ? layout.inter : n;
  if (m <= 0 || outCols <= 0) return true;
  if (k <= 0) {
    if (layout.gated) {
      for (int64_t r = 0; r < m; ++r) std::fill(out.act->data + r * out.act->lda, out.act->data + r * out.act->lda + outCols, uint16_t{0});
    } else if (out.base) {
      std::copy(out.base, out.base + m * outCols, out.y);
    } else if (!accumulate) {
      std::fill(out.y, out.y + m * outCols, 0.0f);
    }
    return true;
  }
  const Bf16MicroKernel micro = bf16MicroKernel(kernel);
  // The activations, converted once per call (not per tile: each row meets every panel pair)
  // into a buffer of the calling thread kept across calls, or as the caller converted them.
  const int64_t blocks = ceilDiv(m, kBf16Rows);
  const int64_t lda = in.bf16 ? in.bf16->lda : bf16ActivationStride(k);
  const uint16_t* a = in.bf16 ? in.bf16->data : convertActivationsBf16(in.x, m, k, kp, lda, pool);
  float* y = out.y;
  const StackedRows* stack = src.rows;
  const uint16_t* packed = src.packed ? src.packed->data() : nullptr;
  // Packed panel p's K slice from k0: panels of 16 rows, kp / 2 pair rows of 32 values each.
  auto packedSlice = [&](int64_t q, int64_t half, int64_t k0) {
    const int64_t p = layout.gated ? (half == 0 ? q : layout.inter / 16 + q) : 2 * q + half;
    return packed + p * kp * 16 + k0 * 16;
  };

  const TileShape shape = tileShape(stack != nullptr);
  const int64_t pairs = layout.pairs();
  const int threads = pool.threads();
  int64_t tilesM = ceilDiv(blocks, shape.blocks), tilesN = ceilDiv(pairs, shape.pairs);
  // More tiles than threads: narrower tiles first (each weight slice is still staged once), then
  // shorter ones (a slice is staged once per row tile).
  while (tilesM * tilesN < 4 * threads && tilesN < pairs) tilesN = std::min(pairs, tilesN * 2);
  while (tilesM * tilesN < 2 * threads && tilesM < blocks) tilesM = std::min(blocks, tilesM * 2);
  const int64_t tiles = tilesM * tilesN;
  const int64_t maxBlocks = ceilDiv(blocks, tilesM), maxPairs = ceilDiv(pairs, tilesN);
  std::atomic<bool> finite{true};
  std::atomic<int64_t> nextTile{0};

  auto runTile = [&](int64_t t) {
    const int64_t mb = t % tilesM, nb = t / tilesM;
    const int64_t b0 = blocks * mb / tilesM, b1 = blocks * (mb + 1) / tilesM;
    const int64_t q0 = pairs * nb / tilesN, q1 = pairs * (nb + 1) / tilesN;
    thread_local std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> stage, rows16;
    thread_local std::vector<float, CacheAlignedAllocator<float>> cbuf, f32;
    if (stack) {
      if (stage.size() < static_cast<size_t>(maxPairs * kKc * 32)) stage.resize(static_cast<size_t>(maxPairs * kKc * 32));
      if (rows16.size() < static_cast<size_t>(16 * kKc)) rows16.resize(static_cast<size_t>(16 * kKc));
      if (f32.size() < static_cast<size_t>(kKc)) f32.resize(static_cast<size_t>(kKc));
    }
    const size_t cNeed = static_cast<size_t>(maxBlocks * maxPairs * kBf16Rows * kBf16Cols);
    if (cbuf.size() < cNeed) cbuf.resize(cNeed);
    auto cOf = [&](int64_t bl, int64_t q) {
      return cbuf.data() + ((bl - b0) * maxPairs + (q - q0)) * kBf16Rows * kBf16Cols;
    };
    bool ok = true;
    for (int64_t k0 = 0; k0 < kp; k0 += kKc) {
      const int64_t kc = std::min(kKc, kp - k0), valid = std::min(kc, k - k0);
      // Streamed: the tile's weight slices, pair q's two panels at stage + (q - q0) * kc * 32
      // (+ kc * 16).
      for (int64_t q = q0; stack && q < q1; ++q) {
        for (int64_t half = 0; half < 2; ++half) {
          const uint16_t* rows[16];
          for (int64_t i = 0; i < 16; ++i) {
            const int64_t g = layout.row(q, half, i);
            if (g < 0) {
              rows[i] = nullptr;
            } else if (stack->allBf16()) {
              rows[i] = reinterpret_cast<const uint16_t*>(stack->row(g, k0));
            } else {
              uint16_t* out = rows16.data() + i * kc;
              ok &= stageRowBf16(*stack, g, k0, valid, kc, out, f32.data());
              rows[i] = out;
            }
          }
          const bool finite = stagePanelBf16(rows, valid, kc, stage.data() + (q - q0) * kc * 32 + half * kc * 16);
          if (stack->allBf16()) ok &= finite;  // else checked in f32 by stageRow (a huge f32 may round to a bf16 Inf)
        }
      }
      // Streamed, while the kernels run: ask for the next K slice of the same rows (32 rows x 512
      // bytes per pair, from memory), a share before each kernel call, so that staging it finds
      // the lines in L2 rather than waiting on 32 streams from DRAM (M at 512 tokens: +10% in
      // one sitting, level in another). A share per call rather than per row block: bursts of
      // 64 prefetches filled the core's queue of L2 misses and stalled it (M and 7B: +3-4%).
      // Packed panels are contiguous, where the hardware prefetcher does as well: prefetching
      // them measured 5-15% slower on the GEMM alone.
      const int64_t nextK0 = k0 + kKc;
      const bool ahead = stack && stack->allBf16() && nextK0 < kp;
      const int64_t lines = ahead ? (std::min(kKc, k - nextK0) * 2 + 63) / 64 : 0;
      const int64_t toFetch = ahead ? (q1 - q0) * 32 : 0, calls = (b1 - b0) * (q1 - q0);
      int64_t fetched = 0, call = 0;
      for (int64_t bl = b0; bl < b1; ++bl) {
        const uint16_t* ab = a + bl * kBf16Rows * lda + k0;
        for (int64_t q = q0; q < q1; ++q) {
          for (const int64_t until = toFetch * ++call / calls; fetched < until; ++fetched) {
            const int64_t g = layout.row(q0 + fetched / 32, (fetched % 32) / 16, fetched % 16);
            if (g < 0) continue;
            const uint8_t* p = stack->row(g, nextK0);
            for (int64_t l = 0; l < lines; ++l) __builtin_prefetch(p + l * 64, 0, 2);  // to L2 (prefetcht1)
          }
          if (packed) {
            micro(kc, ab, lda, packedSlice(q, 0, k0), packedSlice(q, 1, k0), cOf(bl, q), k0 > 0);
          } else {
            const uint16_t* s = stage.data() + (q - q0) * kc * 32;
            micro(kc, ab, lda, s, s + kc * 16, cOf(bl, q), k0 > 0);
          }
        }
      }
    }
    if (!ok) finite.store(false, std::memory_order_relaxed);
    for (int64_t q = q0; q < q1; ++q) {
      for (int64_t bl = b0; bl < b1; ++bl) {
        const int64_t r0 = bl * kBf16Rows, rows = std::min<int64_t>(kBf16Rows, m - r0);
        const float* c = cOf(bl, q);
        if (layout.gated) {
          const int64_t col0 = q * 16, cols = std::min<int64_t>(16, layout.inter - col0);
          swigluTileToBf16(c, rows, cols, out.act->data + r0 * out.act->lda + col0, out.act->lda);
        } else {
          const int64_t col0 = q * 32, cols = std::min<int64_t>(32, n - col0);
          storeBf16Tile(c, rows, cols, out.base ? out.base + r0 * n + col0 : nullptr, y + r0 * n + col0, n, accumulate);
        }
      }
    }
  };
  pool.parallelFor(std::min<int64_t>(threads, tiles), [&](int64_t, int64_t, int) {
    for (int64_t t = nextTile.fetch_add(1, std::memory_order_relaxed); t < tiles;
         t = nextTile.fetch_add(1, std::memory_order_relaxed)) {
      runTile(t);
    }
  });
  return finite.load();
}

}  // namespace

void gemmBf16(const float* x, int64_t m, const PackedWeightBf16& w, float* y, bool accumulate, ThreadPool& pool,
              Bf16Kernel kernel) {
  tileGemm({x, nullptr}, m, w.cols(), {nullptr, &w}, plainLayout(w.rows()), {y, nullptr}, accumulate, pool, kernel);
}

void gemmBf16(const Bf16Activations& x, int64_t m, const PackedWeightBf16& w, float* y, bool accumulate,
              ThreadPool& pool, Bf16Kernel kernel) {
  tileGemm({nullptr, &x}, m, w.cols(), {nullptr, &w}, plainLayout(w.rows()), {y, nullptr}, accumulate, pool, kernel);
}

void gemmBf16Swiglu(const float* x, int64_t m, const PackedWeightBf16& w, const Bf16Activations& out, ThreadPool& pool,
                    Bf16Kernel kernel) {
  if (w.rows() % 32 != 0) throw std::invalid_argument("gemmBf16Swiglu: W must hold [gate; up] with a multiple of 16 rows each");
  tileGemm({x, nullptr}, m, w.cols(), {nullptr, &w}, gatedLayout(w.rows()), {nullptr, &out}, false, pool, kernel);
}

void gemmBf16AddTo(const float* x, int64_t m, const PackedWeightBf16& w, const float* base, float* y, ThreadPool& pool,
                   Bf16Kernel kernel) {
  tileGemm({x, nullptr}, m, w.cols(), {nullptr, &w}, plainLayout(w.rows()), {y, nullptr, base}, false, pool, kernel);
}

bool gemmBf16StreamedAddTo(const float* x, int64_t m, const WeightRows& w, const float* base, float* y, ThreadPool& pool,
                           Bf16Kernel kernel) {
  const StackedRows stack(w);
  return tileGemm({x, nullptr}, m, w.k, {&stack, nullptr}, plainLayout(w.rows()), {y, nullptr, base}, false, pool, kernel);
}

bool gemmBf16Streamed(const float* x, int64_t m, const WeightRows& w, float* y, bool accumulate, ThreadPool& pool,
                      Bf16Kernel kernel) {
  const StackedRows stack(w);
  return tileGemm({x, nullptr}, m, w.k, {&stack, nullptr}, plainLayout(w.rows()), {y, nullptr}, accumulate, pool, kernel);
}

bool gemmBf16Streamed(const Bf16Activations& x, int64_t m, const WeightRows& w, float* y, bool accumulate,
                      ThreadPool& pool, Bf16Kernel kernel) {
  const StackedRows stack(w);
  return tileGemm({nullptr, &x}, m, w.k, {&stack, nullptr}, plainLayout(w.rows()), {y, nullptr}, accumulate, pool, kernel);
}

bool gemmBf16StreamedSwiglu(const float* x, int64_t m, const WeightRows& w, const Bf16Activations& out,
                            ThreadPool& pool, Bf16Kernel kernel) {
  if (w.rows() % 2 != 0) throw std::invalid_argument("gemmBf16StreamedSwiglu: W must hold [gate; up], an even number of rows");
  const StackedRows stack(w);
  return tileGemm({x, nullptr}, m, w.k, {&stack, nullptr}, gatedLayout(w.rows()), {nullptr, &out}, false, pool, kernel);
}

}  // namespace shortgpt
