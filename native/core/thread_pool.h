// A fixed pool of worker threads for the CPU backend. parallelFor splits [0, n) into the same
// contiguous chunks for a given (n, threads), so any per-chunk result written to its own slot
// and reduced afterwards in chunk order is deterministic. Reductions that must be bit-identical
// for ANY thread count (the Block Influence sums) must not depend on the chunking at all: reduce
// per token or per fixed-size block, then sum in index order.
#pragma once
#include <cstdint>
#include <functional>

namespace shortgpt {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const;
  // Runs fn(begin, end, worker) over contiguous chunks of [0, n); returns when all are done.
  // Exceptions thrown by fn are rethrown on the calling thread (the first one wins).
  void parallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end, int worker)>& fn);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace shortgpt
