// Healing statistics and their solve (issue 13, ReplaceMe's least-squares patch): sums of
// outer products over calibration tokens in double, and a Cholesky solve in double. Every
// entry is summed in token (or index) order by one thread, so results are bit-identical for any
// thread count.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace shortgpt {

// For rows t of M, hS, hE ([rows, hidden] f32, row-major), with Y_t = hE_t - hS_t + M_t formed in
// double: G += Mᵀ M and B += Mᵀ Y ([hidden, hidden] double, row-major, added to what they hold).
void healSumsAccumulate(const float* M, const float* hS, const float* hE, int64_t rows, int64_t hidden, double* G, double* B,
                        ThreadPool& pool);

// Solves (A + ridge I) X = B for symmetric positive definite A ([n, n] double) and B ([n, m]
// double, overwritten with X). A is left unchanged. Returns -1, or the index of the first
// pivot that is not positive (A + ridge I is not positive definite; nothing is written to B).
int64_t choleskySolve(const double* A, double ridge, double* B, int64_t n, int64_t m, ThreadPool& pool);

// C = Aᵀ W for A [k, n] and W [k, m] double: C [n, m] (the fold of T into down_proj, Tᵀ W).
void transposeTimes(const double* A, const double* W, int64_t k, int64_t n, int64_t m, double* C, ThreadPool& pool);

}  // namespace shortgpt
