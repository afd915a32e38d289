// Persistent workers for parallelFor. The caller runs chunk 0 itself and workers 1..T-1 run the
// others, so a pool of T threads owns T-1 std::threads. Workers spin briefly before sleeping on
// the condition variable (see spinUntil).
#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SHORTGPT_CPU_RELAX() _mm_pause()
#else
#define SHORTGPT_CPU_RELAX() ((void)0)
#endif

namespace shortgpt {

namespace {
// Set while a thread runs a chunk of some pool, so a nested parallelFor runs inline instead of
// waiting for workers that are busy with the outer loop (which would deadlock).
thread_local bool tInsideParallelFor = false;
constexpr int kSpinPauses = 256;   // ~ a few microseconds of pause before yielding
constexpr int kSpinYields = 64;    // then give the core away (oversubscribed machines) a while

// Waits until done() holds, briefly spinning, then yielding, before the caller blocks: the next
// loop (or the last chunk) usually arrives within microseconds, and a futex sleep and wake-up per
// loop would cost more than many loops. Yielding keeps an oversubscribed machine (more threads
// than free cores) from burning the time slice that the awaited thread needs.
template <typename Done>
bool spinUntil(Done done) {
  for (int i = 0; i < kSpinPauses; ++i) {
    if (done()) return true;
    SHORTGPT_CPU_RELAX();
  }
  for (int i = 0; i < kSpinYields; ++i) {
    if (done()) return true;
    std::this_thread::yield();
  }
  return done();
}
}  // namespace

struct ThreadPool::Impl {
  int threads = 1;
  std::vector<std::thread> workers;

  std::mutex mutex;
  std::condition_variable wake;  // workers wait here for a new generation or shutdown
  std::condition_variable done;  // the caller waits here for pending == 0
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  bool stopping = false;

  // The job of the current generation (valid while pending > 0).
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t n = 0;
  int chunks = 0;
  std::exception_ptr error;

  // Chunk c of [0, n) split into `chunks` contiguous pieces; sizes differ by at most one.
  void chunkRange(int c, int64_t& begin, int64_t& end) const {
    begin = n * c / chunks;
    end = n * (c + 1) / chunks;
  }

  void runChunk(int c) {
    int64_t begin, end;
    chunkRange(c, begin, end);
    const bool outer = tInsideParallelFor;
    tInsideParallelFor = true;
    try {
      (*fn)(begin, end, c);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
    tInsideParallelFor = outer;
  }

  void workerLoop(int index) {
    uint64_t seen = 0;
    for (;;) {
      spinUntil([&] { return generation.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stopping || generation.load(std::memory_order_acquire) != seen; });
        if (stopping) return;
        seen = generation.load(std::memory_order_acquire);
      }
      if (index < chunks) {
        runChunk(index);
        if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lock(mutex);
          done.notify_one();
        }
      }
    }
  }
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl) {
  impl_->threads = std::max(1, threads);
  try {
    for (int i = 1; i < impl_->threads; ++i) impl_->workers.emplace_back([this, i] { impl_->workerLoop(i); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->wake.notify_all();
    for (auto& t : impl_->workers) t.join();
    delete impl_;
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  for (auto& t : impl_->workers) t.join();
  delete impl_;
}

int ThreadPool::threads() const { return impl_->threads; }

void ThreadPool::parallelFor(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  Impl& p = *impl_;
  const int chunks = static_cast<int>(std::min<int64_t>(p.threads, n));
  if (chunks == 1 || tInsideParallelFor) {
    // One chunk: the same partition a pool of one thread would use. Nested loops also land
    // here, and run their whole range as chunk 0 of the enclosing worker.
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    p.fn = &fn;
    p.n = n;
    p.chunks = chunks;
    p.error = nullptr;
    p.pending.store(chunks - 1, std::memory_order_relaxed);
    p.generation.fetch_add(1, std::memory_order_release);
  }
  p.wake.notify_all();
  p.runChunk(0);
  spinUntil([&] { return p.pending.load(std::memory_order_acquire) == 0; });
  {
    std::unique_lock<std::mutex> lock(p.mutex);
    p.done.wait(lock, [&] { return p.pending.load(std::memory_order_acquire) == 0; });
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    error = p.error;
    p.error = nullptr;
    p.fn = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace shortgpt
