// One owned handle of a C API (a CUDA stream, event, pinned buffer, cuBLAS handle): released
// exactly once, by the destructor, whatever path leaves the owner. A CudaSession whose
// constructor throws half-way (ERR_CUDA_OOM on the residual stream, after the streams, events,
// cuBLAS handle and pinned buffers exist) runs no destructor of its own, but its members'
// destructors do run, so owning every resource in one of these means nothing leaks when the
// user retries with a smaller --batch-tokens.
//
// Host-only and free of CUDA headers: Traits says what the handle is and how to release it,
// so the ownership rules are unit-tested with a counting fake (native/tests/host_tests.cc).
#pragma once
#include <utility>

namespace shortgpt::cuda {

// Traits: `using Handle = ...;` (default-constructed = none) and
// `static void release(Handle) noexcept;`.
template <typename Traits>
class Owned {
 public:
  using Handle = typename Traits::Handle;

  Owned() = default;
  explicit Owned(Handle h) : h_(h) {}
  ~Owned() { reset(); }
  Owned(Owned&& o) noexcept : h_(o.release()) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.release();
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  Handle get() const { return h_; }
  explicit operator bool() const { return h_ != Handle{}; }

  // For C-style creators, `create(x.out())`: whatever was held is released first, and the new
  // handle is owned as soon as the creator writes it (even if a later check then throws).
  Handle* out() {
    reset();
    return &h_;
  }

  // Gives up ownership without releasing.
  Handle release() { return std::exchange(h_, Handle{}); }

  void reset() noexcept {
    if (h_ != Handle{}) Traits::release(std::exchange(h_, Handle{}));
  }

 private:
  Handle h_{};
};

}  // namespace shortgpt::cuda
