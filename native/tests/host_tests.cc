// Host-only unit tests of the CUDA backend's logic that needs no GPU: the attention kernel choice
// (attention_select.h) and the resource owners (owned.h) that keep a failing CudaSession
// constructor from leaking. Built by CMake as shortgpt_host_tests (no CUDA needed) and run by
// test/native/cuda-host.test.ts; prints one line per failed check and exits 1 when any failed.
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/attention_select.h"
#include "cuda/owned.h"

namespace {

int failures = 0, checks = 0;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    ++checks;                                                                         \
    if (!(cond)) {                                                                    \
      ++failures;                                                                     \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
    }                                                                                 \
  } while (0)

using shortgpt::cuda::AttentionKernel;
using shortgpt::cuda::attentionEnvForcesSimt;
using shortgpt::cuda::chooseAttentionKernel;
using shortgpt::cuda::tcAttentionSmemBytes;

// cudaDevAttrMaxSharedMemoryPerBlockOptin as the CUDA C Programming Guide's table of compute
// capabilities lists it (shared memory per block, opt-in).
constexpr size_t kOptinSm80 = 163 * 1024;   // A100
constexpr size_t kOptinSm90 = 227 * 1024;   // H100 / H200
constexpr size_t kOptin99K = 99 * 1024;     // sm_86, sm_89, sm_120: RTX 30/40/50, L4, L40

void testAttentionSelection() {
  // The byte counts the review computed by hand from attention_tc.cu's layout.
  CHECK(tcAttentionSmemBytes(128, 2) == 107264);
  CHECK(tcAttentionSmemBytes(96, 2) == 86784);
  CHECK(tcAttentionSmemBytes(64, 2) == 66304);

  const AttentionKernel TC = AttentionKernel::TensorCore, SIMT = AttentionKernel::Simt;
  // head_dim 128 in 16 bits: tensor cores where 104.75 KiB fit (sm_80, sm_90), SIMT on 99 KiB parts.
  CHECK(chooseAttentionKernel(128, SG_DTYPE_BF16, kOptinSm80, false) == TC);
  CHECK(chooseAttentionKernel(128, SG_DTYPE_BF16, kOptinSm90, false) == TC);
  CHECK(chooseAttentionKernel(128, SG_DTYPE_F16, kOptinSm80, false) == TC);
  {
    const size_t optin = kOptin99K;  // cc 8.6, 8.9 and 12.0 all report 99 KiB
    CHECK(chooseAttentionKernel(128, SG_DTYPE_BF16, optin, false) == SIMT);
    CHECK(chooseAttentionKernel(128, SG_DTYPE_F16, optin, false) == SIMT);
    // head_dim 64 and 96 fit there.
    CHECK(chooseAttentionKernel(64, SG_DTYPE_BF16, optin, false) == TC);
    CHECK(chooseAttentionKernel(96, SG_DTYPE_BF16, optin, false) == TC);
  }
  CHECK(chooseAttentionKernel(64, SG_DTYPE_BF16, kOptinSm80, false) == TC);
  // The limit is inclusive, and one byte short is not enough.
  CHECK(chooseAttentionKernel(128, SG_DTYPE_BF16, 107264, false) == TC);
  CHECK(chooseAttentionKernel(128, SG_DTYPE_BF16, 107263, false) == SIMT);
  // F32 layers (exact / TF32 GEMMs) always take the f32 kernel.
  CHECK(chooseAttentionKernel(128, SG_DTYPE_F32, kOptinSm90, false) == SIMT);
  CHECK(chooseAttentionKernel(64, SG_DTYPE_F32, kOptinSm80, false) == SIMT);
  // head_dims the WMMA kernel has no instance for.
  CHECK(chooseAttentionKernel(80, SG_DTYPE_BF16, kOptinSm90, false) == SIMT);
  CHECK(chooseAttentionKernel(256, SG_DTYPE_BF16, kOptinSm90, false) == SIMT);
  // No opt-in reported (0): never the tensor-core kernel.
  CHECK(chooseAttentionKernel(16, SG_DTYPE_BF16, 0, false) == SIMT);
  // SHORTGPT_CUDA_ATTENTION=simt forces SIMT everywhere; other values do not.
  CHECK(chooseAttentionKernel(64, SG_DTYPE_BF16, kOptinSm90, attentionEnvForcesSimt("simt")) == SIMT);
  CHECK(chooseAttentionKernel(64, SG_DTYPE_BF16, kOptinSm90, attentionEnvForcesSimt("tc")) == TC);
  CHECK(chooseAttentionKernel(64, SG_DTYPE_BF16, kOptinSm90, attentionEnvForcesSimt(nullptr)) == TC);
  CHECK(!attentionEnvForcesSimt("") && !attentionEnvForcesSimt("simtx") && !attentionEnvForcesSimt("SIMT"));
}

// A fake C API: handles are positive ints, every create and release is counted.
struct Ledger {
  int created = 0, released = 0;
  std::vector<int> live;
};
Ledger ledger;

struct FakeTraits {
  using Handle = int;
  static void release(Handle h) noexcept {
    ++ledger.released;
    for (size_t i = 0; i < ledger.live.size(); ++i)
      if (ledger.live[i] == h) {
        ledger.live.erase(ledger.live.begin() + i);
        return;
      }
    ++ledger.released;  // releasing a handle that is not live counts twice: the check below fails
  }
};
using Fake = shortgpt::cuda::Owned<FakeTraits>;

int fakeCreate(int* out) {
  *out = ++ledger.created;
  ledger.live.push_back(*out);
  return 0;
}

// The shape of CudaSession's constructor: several resources acquired in turn, then a step
// that may throw (the residual stream's ERR_CUDA_OOM), with `failAt` choosing which.
struct FakeSession {
  Fake streamA, streamB, eventA, blas, pinned[2];
  explicit FakeSession(int failAt) {
    int step = 0;
    auto acquire = [&](Fake& f) {
      if (++step == failAt) throw std::runtime_error("injected");
      fakeCreate(f.out());
    };
    acquire(streamA);
    acquire(streamB);
    acquire(eventA);
    acquire(blas);
    for (Fake& p : pinned) acquire(p);
    if (++step == failAt) throw std::runtime_error("injected OOM after every resource exists");
  }
};

void testOwned() {
  for (int failAt = 1; failAt <= 8; ++failAt) {
    ledger = Ledger{};
    bool threw = false;
    try {
      FakeSession s(failAt);
    } catch (const std::runtime_error&) {
      threw = true;
    }
    CHECK(ledger.created == (failAt <= 7 ? failAt - 1 : 6));
    CHECK(ledger.released == ledger.created);  // each acquired handle released exactly once
    CHECK(ledger.live.empty());
    CHECK(threw == (failAt <= 7));
  }

  ledger = Ledger{};
  {
    Fake a;
    CHECK(!a);
    fakeCreate(a.out());
    CHECK(static_cast<bool>(a) && a.get() == 1);
    fakeCreate(a.out());  // out() releases what was held before the creator writes
    CHECK(ledger.released == 1 && a.get() == 2);
    Fake b(std::move(a));  // moves transfer ownership, no release
    CHECK(!a && b.get() == 2 && ledger.released == 1);
    Fake c;
    c = std::move(b);
    CHECK(!b && c.get() == 2 && ledger.released == 1);
    Fake d;
    fakeCreate(d.out());
    d = std::move(c);  // the handle d held is released, c's moves in
    CHECK(d.get() == 2 && ledger.released == 2);
    const int kept = d.release();  // released by nobody: the caller owns it now
    CHECK(kept == 2 && !d);
    FakeTraits::release(kept);
  }
  CHECK(ledger.created == 3 && ledger.released == 3 && ledger.live.empty());
}

}  // namespace

int main() {
  testAttentionSelection();
  testOwned();
  std::printf("host_tests: %d of %d checks passed\n", checks - failures, checks);
  return failures == 0 ? 0 : 1;
}
