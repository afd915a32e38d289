// The contract between the BF16 GEMM driver (gemm_bf16.cc) and its micro-kernels. Internal.
//
// A kernel computes C[32 x 32] (+)= A[32 x kc] * B, where
//   A is 32 rows of bf16 activations, row stride lda elements (kc, a multiple of 32; the matrix's
//     K is zero-padded to one),
//   B is two packed panels' slices (b0, b1: 16 columns each, the pair layout of gemm_bf16.h, kc / 2
//     rows of 32 bf16 each),
//   C is f32, row stride 32 (columns 0..15 from b0, 16..31 from b1), overwritten (add == false) or
//     accumulated into (add == true); the driver copies its valid part into Y at the end.
// The driver walks K in fixed slices, in order, so an element's value never depends on the tile.
#pragma once
#include <cstdint>
#include <string>

namespace shortgpt {

// Declared, not included: the kernel files include this header under AMX / AVX-512 target
// pragmas, and inline functions of other headers compiled there could be the copies the linker keeps.
enum class Bf16Kernel;
class ThreadPool;

constexpr int kBf16Rows = 32;  // rows of A per kernel call (two AMX A tiles; four 8-row AVX-512 strips)
constexpr int kBf16Cols = 32;  // columns per kernel call: two 16-column panels

// A micro-kernel as above.
using Bf16MicroKernel = void (*)(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1,
                                 float* c, bool add);

// Shared by gemm_bf16.cc and the tile loop (gemm_bf16_driver.cc):
// the micro-kernel `kernel` resolves to (throws std::runtime_error when it cannot run here);
Bf16MicroKernel bf16MicroKernel(Bf16Kernel kernel);
// rows x k f32 (row stride ldx) -> rows x kp bf16 (row stride kp, zeros past k), round to nearest even;
void convertRowsBf16(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t kp, uint16_t* out);
// stagePanelAvx512 where the CPU has it, else a scalar loop with the same result;
bool stagePanelBf16(const uint16_t* const rows[16], int64_t valid, int64_t kc, uint16_t* panel);
// X [m, k] in bf16, rows padded with zeros to a multiple of kBf16Rows and to kp columns, row stride
// lda, in a buffer of the calling thread kept across calls (converted by the pool);
const uint16_t* convertActivationsBf16(const float* x, int64_t m, int64_t k, int64_t kp, int64_t lda, ThreadPool& pool);
// the valid rows x cols of a kernel's C [32 x 32] into Y (row stride ldy): written, added, or
// (base not null: rows of the same stride) written as base + C;
void storeBf16Tile(const float* c, int64_t rows, int64_t cols, const float* base, float* y, int64_t ldy, bool accumulate);
// the fused SwiGLU epilogue: per row i < rows of a gated C (gate in columns 0..15, up in 16..31),
// bf16(silu(gate) * up) for the first `cols` spans into out + i * ldo (swigluTileToBf16Avx512
// where the CPU has AVX-512, else swiglu's span and convertRowsBf16: the same bits).
void swigluTileToBf16(const float* c, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo);

#if defined(SHORTGPT_X86)
// Asks Linux for the AMX tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM); "" on success, else why not.
std::string amxRequestPermission();
// Loads the calling thread's tile configuration (every tile 16 rows x 64 bytes) unless it already
// has: the AMX GEMM kernel and the AMX attention (attention_amx.cc) share it.
void amxConfigureTiles();
void gemmBf16KernelAmx(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1, float* c,
                       bool add);
void gemmBf16KernelAvx512(int64_t kc, const uint16_t* a, int64_t lda, const uint16_t* b0, const uint16_t* b1, float* c,
                          bool add);
// rows x k f32 (row stride ldx) -> rows x kp bf16 (row stride kp, zeros past k), round to nearest even.
void convertRowsToBf16Avx512(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t kp, uint16_t* out);
// One panel's K slice from 16 rows of bf16 read where they lie (rows[r], any alignment; null: a
// zero row): K values [0, valid) of each row, zeros from there to kc (a multiple of 32), into the
// pair layout at `panel` (64-byte aligned, kc / 2 pair rows). Returns false when a value read is
// NaN or +-Inf (exponent bits all ones).
bool stagePanelAvx512(const uint16_t* const rows[16], int64_t valid, int64_t kc, uint16_t* panel);
void swigluTileToBf16Avx512(const float* c, int64_t rows, int64_t cols, uint16_t* out, int64_t ldo);
#endif

}  // namespace shortgpt
