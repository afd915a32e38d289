// The AMX micro-kernel of fast mode (TDPBF16PS on Intel Sapphire Rapids and later), and the Linux
// permission request for the tile state. Compiled for x86-64 with the target set here, called only
// after the run-time check in gemm_bf16.cc. Eight tile registers: C as 2 x 2 tiles of 16 x 16 f32
// (tmm0..3), two A tiles of 16 rows x 32 bf16 (tmm4, 5) and two B tiles of 16 k-pairs x 16 columns
// (tmm6, 7); a B tile is 16 consecutive pair rows of a packed panel, so it loads with stride 64.
#if defined(SHORTGPT_X86)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512f"))), apply_to = function)
#else
#pragma GCC target("amx-tile,amx-bf16,avx512f")
#endif
#include <immintrin.h>

#include <cerrno>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu/gemm_bf16_kernels.h"

namespace shortgpt {

namespace {

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

}  // namespace

// Every tile 16 rows x 64 bytes (palette 1). A constant in memory: GCC treats the stores to a
// local configuration before LDTILECFG as dead (it keeps only the zeroing and the palette, which
// configures no tile at all: the next tile instruction is #UD), so the bytes must already be there.
constexpr TileConfig kTileConfig = [] {
  TileConfig cfg{};
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  return cfg;
}();

// Loaded once per thread: the configuration is part of the thread's state and the kernels never
// change it.
void amxConfigureTiles() {
  thread_local bool configured = false;
  if (configured) return;
  _tile_loadconfig(&kTileConfig);
  configured = true;
}

std::string amxRequestPermission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  // Linux 5.16+: tile data (XFEATURE_XTILEDATA = 18) is off until the process asks for it, so
  // that processes that never use AMX keep small signal frames. The grant is process-wide.
  constexpr int kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    return std::string("Linux refused the AMX tile state (arch_prctl(ARCH_REQ_XCOMP_PERM) failed: ") +
           std::strerror(errno) + "; Linux 5.16 or later is needed)";
  }
  unsigned long long mask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0 || (mask & (1ull << kXfeatureXtiledata)) == 0) {
    return "Linux did not grant the AMX tile state (ARCH_GET_XCOMP_PERM lacks XTILEDATA)";
  }
  return "";
#else
  return "AMX needs Linux (arch_prctl ARCH_REQ_XCOMP_PERM)";
#endif
}

void gemmBf16KernelAmx(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1, float* c,
                       bool add) {
  amxConfigureTiles();
  const int64_t strideA = lda * static_cast<int64_t>(sizeof(uint16_t));
  const uint16_t* a1 = a + 16 * lda;
  constexpr int64_t strideC = kBf16Cols * sizeof(float);
  if (add) {
    _tile_loadd(0, c, strideC);
    _tile_loadd(1, c + 16, strideC);
    _tile_loadd(2, c + 16 * kBf16Cols, strideC);
    _tile_loadd(3, c + 16 * kBf16Cols + 16, strideC);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t kk = 0; kk < kc; kk += 32) {
    _tile_loadd(4, a + kk, strideA);
    _tile_loadd(5, a1 + kk, strideA);
    _tile_loadd(6, b0 + kk * 16, 64);  // pair rows kk/2 .. kk/2+15, 32 bf16 each
    _tile_loadd(7, b1 + kk * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, strideC);
  _tile_stored(1, c + 16, strideC);
  _tile_stored(2, c + 16 * kBf16Cols, strideC);
  _tile_stored(3, c + 16 * kBf16Cols + 16, strideC);
}

}  // namespace shortgpt
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif  // SHORTGPT_X86
