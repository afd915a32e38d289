// Measures the FMA peak (see peak.h). Each thread times short batches of FMAs for 0.2 s and keeps
// its fastest batch; the peak is the sum over threads. The fastest batch, not the average, because
// the peak is a property of the hardware: on a shared machine the average mostly measures the
// other processes (the threads still run at the same time, so a turbo clock that drops with more
// busy cores shows).
#include "cpu/peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/kernels_avx2.h"

namespace shortgpt {

namespace {

constexpr double kRunSeconds = 0.2;
constexpr int64_t kBatch = 1 << 14;  // iterations per timed batch: ~30 us, far shorter than a time slice

// The portable kernel's width: 4-lane vectors (SSE, NEON) where GCC/Clang vector extensions
// exist, as in gemm.cc's portable kernel; 12 independent multiply-add chains.
#if defined(__GNUC__)
constexpr int kPortableLanes = 4;
float portablePeakLoop(int64_t iterations) {
  typedef float V4 __attribute__((vector_size(16)));
  volatile float va = 0.999999f, vb = 1e-7f;  // opaque to the optimiser
  const V4 a = {va, va, va, va}, b = {vb, vb, vb, vb};
  V4 c0 = b, c1 = b * 2, c2 = b * 3, c3 = b * 4, c4 = b * 5, c5 = b * 6;
  V4 c6 = b * 7, c7 = b * 8, c8 = b * 9, c9 = b * 10, c10 = b * 11, c11 = b * 12;
  for (int64_t it = 0; it < iterations; ++it) {
    c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;
    c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;
    c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;
  }
  const V4 s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
  return s[0] + s[3];
}
#else
constexpr int kPortableLanes = 1;
float portablePeakLoop(int64_t iterations) {
  float acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = static_cast<float>(i) * 1e-3f;
  volatile float va = 0.999999f, vb = 1e-7f;
  const float a = va, b = vb;
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
  }
  return acc[0] + acc[11];
}
#endif

}  // namespace

double measureFmaPeakGflops(int threads) {
  threads = std::max(1, threads);
  // The peak of the vector width the GEMM runs at, so "fraction of peak" compares like with like.
  const std::string kernel = gemmKernelName();
  const bool avx512 = kernel == "avx512", avx2 = kernel == "avx2-fma";
  const double flopsPerIteration = 12.0 * 2.0 * (avx512 ? 16.0 : avx2 ? 8.0 : kPortableLanes);
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::vector<double> bestRate(static_cast<size_t>(threads), 0.0);
  std::vector<float> sinks(static_cast<size_t>(threads), 0.0f);
  auto body = [&](int t) {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    float sink = 0;
    double best = 0;
    for (auto now = start; std::chrono::duration<double>(now - start).count() < kRunSeconds;) {
#if defined(SHORTGPT_X86)
      sink += avx512 ? fmaPeakLoopAvx512(kBatch) : avx2 ? fmaPeakLoopAvx2(kBatch) : portablePeakLoop(kBatch);
#else
      sink += portablePeakLoop(kBatch);
#endif
      const auto after = std::chrono::steady_clock::now();
      const double seconds = std::chrono::duration<double>(after - now).count();
      if (seconds > 0) best = std::max(best, static_cast<double>(kBatch) * flopsPerIteration / seconds);
      now = after;
    }
    bestRate[static_cast<size_t>(t)] = best;
    sinks[static_cast<size_t>(t)] = sink;
  };
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(body, t);
  while (ready.load() < threads - 1) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  body(0);
  for (auto& w : workers) w.join();
  // More threads than cores cannot add FMA units: count only as many threads as there are cores.
  std::sort(bestRate.begin(), bestRate.end(), [](double a, double b) { return a > b; });
  const size_t counted = std::min(bestRate.size(), static_cast<size_t>(hardwareThreads()));
  double total = 0;
  for (size_t i = 0; i < counted; ++i) total += bestRate[i];
  return total / 1e9;
}

}  // namespace shortgpt
