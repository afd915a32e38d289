// Exact mode's GEMM on a weight read where it lies (gemm.h, gemmStreamed): gemm.cc's packing done
// tile by tile into a buffer that stays in cache, for a layer whose weights meet one batch of rows
// (streamed_layer.h). Packing such a layer first cost ~10% of its time on Llama-3.2-1B's shape at
// 512 tokens (pread's copy out of the page cache, the transpose writing a layer-sized packed copy
// to memory, the GEMM reading it back); here each weight byte is read from the mapped file and
// transposed into an L1-sized panel slice that the tile's rows use at once. In f32 the GEMM is
// compute-bound and the staging costs about what packing did: the gain is mostly memory (no
// packed copy of the layer: 0.8 GB at 7B, 3.4 GB for a 70B layer), speed level to +5%.
//
// A tile is up to 258 rows x 16 panels (a slice is transposed once per 258 rows); for each K
// slice (kGemmKC, as gemm.cc) its panel slices are staged, then its rows swept 6 at a time per
// panel pair. (Prefetching the next slice's rows, as the bf16 driver does, measured level here.)
// The slices equal PackedWeight's and each slice is added into Y in the same order, so results
// are bit-identical to gemm() on the packed weight, for any thread count.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"

namespace shortgpt {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tile shape: 43 micro-rows (258 rows) x 16 panels (256 columns): a slice is transposed once per
// 258 rows. Measured at 512 tokens, streamed vs packed (interleaved runs): SmolLM-135M's shape
// +3-5%, Llama-3.2-1B's and Llama-2-7B's level (16x16, 43x8, 85x4, 85x8 and 85x16 no better).
// SHORTGPT_F32_TILE=RxP (micro-rows x panels, read once) overrides, to measure others.
struct TileShape {
  int64_t microRows = 43;
  int64_t panels = 16;
};
const TileShape& tileShape() {
  static const TileShape shape = [] {
    TileShape t;
    if (const char* v = std::getenv("SHORTGPT_F32_TILE")) {
      long r = 0, p = 0;
      if (std::sscanf(v, "%ldx%ld", &r, &p) == 2 && r > 0 && p > 0) t = {r, p};
    }
    return t;
  }();
  return shape;
}

// Panel p's K slice [k0, k0 + kc) into `out` ([kc][16], zero past N). Returns false when a
// value read is NaN or +-Inf.
bool stagePanel(const StackedRows& stack, int64_t n, int64_t p, int64_t k0, int64_t kc, TransposeToPanelFn transpose,
                float* scratch, float* out) {
  const int64_t k = stack.weight().k, g0 = p * kGemmNR, valid = std::min<int64_t>(kGemmNR, n - g0);
  bool finite = true;
  if (stack.allF32() && valid == kGemmNR && stack.part(g0) == stack.part(g0 + kGemmNR - 1)) {
    const uint8_t* first = stack.row(g0, k0);
    if (reinterpret_cast<uintptr_t>(first) % alignof(float) == 0) {  // rows straight from the mapping
      const float* rows = reinterpret_cast<const float*>(first);
      for (int64_t c = 0; c < kGemmNR; ++c) finite = finite && allFinite(rows + c * k, kc);
      transpose(rows, k, kc, out);
      return finite;
    }
  }
  for (int64_t c = 0; c < kGemmNR; ++c) {
    float* row = scratch + c * kc;
    if (c < valid) {
      finite = stack.rowF32(g0 + c, k0, kc, row) && finite;
    } else {
      std::fill(row, row + kc, 0.0f);
    }
  }
  transpose(scratch, kc, kc, out);
  return finite;
}

}  // namespace

bool gemmStreamed(const float* x, int64_t m, const WeightRows& w, float* y, bool accumulate, ThreadPool& pool,
                  GemmKernel kernel) {
  const int64_t n = w.rows(), k = w.k;
  if (m <= 0 || n <= 0) return true;
  if (k <= 0) {  // an empty sum
    if (!accumulate) std::fill(y, y + m * n, 0.0f);
    return true;
  }
  const GemmKernels kernels = gemmKernels(kernel);
  const TransposeToPanelFn transpose = transposeToPanelFn();  // resolved once (it reads the environment)
  const StackedRows stack(w);
  const int64_t panels = ceilDiv(n, kGemmNR), microRows = ceilDiv(m, kGemmMR);
  const int threads = pool.threads();
  int64_t tilesM = ceilDiv(microRows, tileShape().microRows), tilesN = ceilDiv(panels, tileShape().panels);
  while (tilesM * tilesN < 4 * threads && tilesN < panels) tilesN = std::min(panels, tilesN * 2);
  while (tilesM * tilesN < 2 * threads && tilesM < microRows) tilesM = std::min(microRows, tilesM * 2);
  const int64_t tiles = tilesM * tilesN;
  const int64_t maxPanels = ceilDiv(panels, tilesN);
  std::atomic<bool> finite{true};
  std::atomic<int64_t> nextTile{0};

  auto runTile = [&](int64_t t) {
    const int64_t mb = t % tilesM, nb = t / tilesM;
    const int64_t i0 = kGemmMR * (microRows * mb / tilesM), i1 = std::min(m, kGemmMR * (microRows * (mb + 1) / tilesM));
    // Whole pairs of panels per tile where the pair kernel exists (as gemm.cc).
    const int64_t unit = kernels.pair != nullptr ? 2 : 1, units = ceilDiv(panels, unit);
    const int64_t p0 = std::min(panels, unit * (units * nb / tilesN)), p1 = std::min(panels, unit * (units * (nb + 1) / tilesN));
    thread_local std::vector<float, CacheAlignedAllocator<float>> stage, scratch;
    const size_t stageNeed = static_cast<size_t>((maxPanels + 1) * kGemmKC * kGemmNR);
    if (stage.size() < stageNeed) stage.resize(stageNeed);
    if (scratch.size() < static_cast<size_t>(kGemmNR * kGemmKC)) scratch.resize(static_cast<size_t>(kGemmNR * kGemmKC));
    bool ok = true;
    for (int64_t pc = 0; pc < k; pc += kGemmKC) {
      const int64_t kc = std::min(kGemmKC, k - pc);
      const bool add = accumulate || pc > 0;
      for (int64_t p = p0; p < p1; ++p) ok = stagePanel(stack, n, p, pc, kc, transpose, scratch.data(), stage.data() + (p - p0) * kc * kGemmNR) && ok;
      for (int64_t p = p0; p < p1;) {
        const float* b = stage.data() + (p - p0) * kc * kGemmNR;
        float* c = y + p * kGemmNR;
        if (kernels.pair != nullptr && p + 1 < p1) {  // panel p is full, since panel p+1 exists
          const int nr1 = static_cast<int>(std::min<int64_t>(kGemmNR, n - (p + 1) * kGemmNR));
          for (int64_t i = i0; i < i1; i += kGemmMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kGemmMR, i1 - i));
            kernels.pair(mr, kc, x + i * k + pc, k, b, b + kc * kGemmNR, c + i * n, n, nr1, add);
          }
          p += 2;
          continue;
        }
        const int nr = static_cast<int>(std::min<int64_t>(kGemmNR, n - p * kGemmNR));
        for (int64_t i = i0; i < i1; i += kGemmMR) {
          const int mr = static_cast<int>(std::min<int64_t>(kGemmMR, i1 - i));
          kernels.micro(mr, kc, x + i * k + pc, k, b, c + i * n, n, nr, add);
        }
        ++p;
      }
    }
    if (!ok) finite.store(false, std::memory_order_relaxed);
  };
  pool.parallelFor(std::min<int64_t>(threads, tiles), [&](int64_t, int64_t, int) {
    for (int64_t t = nextTile.fetch_add(1, std::memory_order_relaxed); t < tiles;
         t = nextTile.fetch_add(1, std::memory_order_relaxed)) {
      runTile(t);
    }
  });
  return finite.load();
}

}  // namespace shortgpt
