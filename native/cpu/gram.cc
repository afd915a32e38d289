#include "cpu/gram.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace shortgpt {

namespace {

// C[i, j] += sum over t < k, in ascending t, of A[t, i] * W[t, j] (row-major, leading dimensions
// lda / ldw / ldc). C is cut into kRows x kCols tiles, one thread per tile, each accumulated in a
// local block (L1-sized) over all t: every C entry is one running sum in t order, so the result
// does not depend on the thread count, and a W row segment loaded once serves kRows FMAs each.
constexpr int64_t kRows = 16, kCols = 128;

void atbAccumulate(const double* A, int64_t lda, const double* W, int64_t ldw, int64_t k, int64_t n, int64_t m, double* C,
                   int64_t ldc, ThreadPool& pool) {
  const int64_t rowTiles = (n + kRows - 1) / kRows, colTiles = (m + kCols - 1) / kCols;
  pool.parallelFor(rowTiles * colTiles, [&](int64_t begin, int64_t end, int) {
    double acc[kRows][kCols];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t i0 = (tile / colTiles) * kRows, j0 = (tile % colTiles) * kCols;
      const int64_t ni = std::min(kRows, n - i0), nj = std::min(kCols, m - j0);
      for (int64_t ii = 0; ii < ni; ++ii) std::copy(C + (i0 + ii) * ldc + j0, C + (i0 + ii) * ldc + j0 + nj, acc[ii]);
      for (int64_t t = 0; t < k; ++t) {
        const double* a = A + t * lda + i0;
        const double* w = W + t * ldw + j0;
        for (int64_t ii = 0; ii < ni; ++ii) {
          const double av = a[ii];
          double* c = acc[ii];
          for (int64_t jj = 0; jj < nj; ++jj) c[jj] += av * w[jj];
        }
      }
      for (int64_t ii = 0; ii < ni; ++ii) std::copy(acc[ii], acc[ii] + nj, C + (i0 + ii) * ldc + j0);
    }
  });
}

}  // namespace

void healSumsAccumulate(const float* M, const float* hS, const float* hE, int64_t rows, int64_t hidden, double* G, double* B,
                        ThreadPool& pool) {
  const int64_t H = hidden;
  // Tokens converted to double at a time: about 64 MiB for M and Y together, so that G and B
  // (hidden x hidden each) are read and written once per tile, not once per token.
  const int64_t tileRows = std::max<int64_t>(64, std::min<int64_t>(rows, (int64_t{64} << 20) / (16 * H)));
  std::vector<double> m(static_cast<size_t>(std::min(tileRows, rows) * H)), y(m.size());
  for (int64_t t0 = 0; t0 < rows; t0 += tileRows) {
    const int64_t n = std::min(tileRows, rows - t0);
    pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t r = (t0 + t) * H;
        for (int64_t j = 0; j < H; ++j) {
          const double mv = M[r + j];
          m[static_cast<size_t>(t * H + j)] = mv;
          // Y = h_e - h_s + M in double: exact for f32 inputs up to one rounding of the sum.
          y[static_cast<size_t>(t * H + j)] = (static_cast<double>(hE[r + j]) - static_cast<double>(hS[r + j])) + mv;
        }
      }
    });
    atbAccumulate(m.data(), H, m.data(), H, n, H, H, G, H, pool);
    atbAccumulate(m.data(), H, y.data(), H, n, H, H, B, H, pool);
  }
}

int64_t choleskySolve(const double* A, double ridge, double* B, int64_t n, int64_t m, ThreadPool& pool) {
  // Right-looking Cholesky on S = A + ridge I (lower triangle, row-major): at step j, column j of
  // L is S's column j over sqrt(S[j, j]), then every S[i, c] (j < c <= i) loses L[i, j] L[c, j].
  // Each entry's subtractions run in ascending j, the same arithmetic as the textbook
  // dot-product form, and each row belongs to one thread: deterministic for any thread count.
  std::vector<double> L(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    std::copy(A + i * n, A + i * n + i + 1, L.data() + i * n);
    L[static_cast<size_t>(i * n + i)] += ridge;
  }
  std::vector<double> col(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const double d = L[static_cast<size_t>(j * n + j)];
    if (!(d > 0) || !std::isfinite(d)) return j;
    const double djj = std::sqrt(d);
    L[static_cast<size_t>(j * n + j)] = djj;
    for (int64_t i = j + 1; i < n; ++i) col[static_cast<size_t>(i)] = (L[static_cast<size_t>(i * n + j)] /= djj);
    pool.parallelFor(n - j - 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = j + 1 + begin; i < j + 1 + end; ++i) {
        double* si = L.data() + i * n;
        const double lij = col[static_cast<size_t>(i)];
        for (int64_t c = j + 1; c <= i; ++c) si[c] -= lij * col[static_cast<size_t>(c)];
      }
    });
  }
  // Triangular solves on B's rows, L z = b then Lᵀ x = z, each in the same order as a
  // column-at-a-time substitution; threads own column strips of B.
  // U = Lᵀ row-major: the back substitution reads column i of L contiguously.
  std::vector<double> U(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k <= i; ++k) U[static_cast<size_t>(k * n + i)] = L[static_cast<size_t>(i * n + k)];
  constexpr int64_t kStrip = 64;
  const int64_t strips = (m + kStrip - 1) / kStrip;
  pool.parallelFor(strips, [&](int64_t begin, int64_t end, int) {
    for (int64_t s = begin; s < end; ++s) {
      const int64_t c0 = s * kStrip, nc = std::min(kStrip, m - c0);
      for (int64_t i = 0; i < n; ++i) {
        double* xi = B + i * m + c0;
        const double* li = L.data() + i * n;
        for (int64_t k = 0; k < i; ++k) {
          const double l = li[k];
          const double* xk = B + k * m + c0;
          for (int64_t c = 0; c < nc; ++c) xi[c] -= l * xk[c];
        }
        for (int64_t c = 0; c < nc; ++c) xi[c] /= li[i];
      }
      for (int64_t i = n - 1; i >= 0; --i) {
        double* xi = B + i * m + c0;
        const double* ui = U.data() + i * n;
        for (int64_t k = i + 1; k < n; ++k) {
          const double l = ui[k];
          const double* xk = B + k * m + c0;
          for (int64_t c = 0; c < nc; ++c) xi[c] -= l * xk[c];
        }
        for (int64_t c = 0; c < nc; ++c) xi[c] /= ui[i];
      }
    }
  });
  return -1;
}

void transposeTimes(const double* A, const double* W, int64_t k, int64_t n, int64_t m, double* C, ThreadPool& pool) {
  std::fill(C, C + n * m, 0.0);
  atbAccumulate(A, n, W, m, k, n, m, C, m, pool);
}

}  // namespace shortgpt
