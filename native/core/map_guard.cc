#include "core/map_guard.h"

#include <atomic>
#include <cstdint>
#include <mutex>

#if defined(__linux__)
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace shortgpt {

#if defined(__linux__)
namespace {

constexpr int kSlots = 512;  // mappings guarded at once (a layer maps a handful of tensors)

struct Slot {
  std::atomic<uintptr_t> begin{0};  // 0: free
  std::atomic<uintptr_t> end{0};
  std::atomic<int> shrank{0};
};

Slot g_slots[kSlots];
uintptr_t g_pageSize = 4096;
struct sigaction g_previous;
bool g_installed = false;

void onSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Slot& s : g_slots) {
    const uintptr_t b = s.begin.load(std::memory_order_acquire);
    if (b <= 1 || addr < b || addr >= s.end.load(std::memory_order_acquire)) continue;  // 1: being claimed
    void* page = reinterpret_cast<void*>(addr & ~(g_pageSize - 1));
    if (mmap(page, g_pageSize, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      s.shrank.store(1, std::memory_order_release);
      return;  // the read is retried and finds zeros
    }
    break;
  }
  // Not ours: what would have happened without this handler.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) return;
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  // The default action: restore it; returning re-runs the faulting read, which now ends the
  // process as SIGBUS always did.
  signal(sig, SIG_DFL);
}

bool install() {
  static std::once_flag once;
  std::call_once(once, [] {
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) g_pageSize = static_cast<uintptr_t>(page);
    struct sigaction sa {};
    sa.sa_sigaction = onSigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    g_installed = sigaction(SIGBUS, &sa, &g_previous) == 0;
  });
  return g_installed;
}

}  // namespace

int guardMapping(const void* begin, size_t bytes) {
  if (begin == nullptr || bytes == 0 || !install()) return -1;
  const uintptr_t b = reinterpret_cast<uintptr_t>(begin);
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t expected = 0;
    Slot& s = g_slots[i];
    // Claim a free slot: end and the flag first are written under a begin of 1 (never a real
    // mapping address), so the handler never sees a half-written range.
    if (s.begin.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      s.shrank.store(0, std::memory_order_relaxed);
      s.end.store(b + bytes, std::memory_order_release);
      s.begin.store(b, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void unguardMapping(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  g_slots[slot].begin.store(0, std::memory_order_release);
  g_slots[slot].end.store(0, std::memory_order_release);
}

bool mappingShrank(int slot) {
  return slot >= 0 && slot < kSlots && g_slots[slot].shrank.load(std::memory_order_acquire) != 0;
}

#else  // not Linux: no guard

int guardMapping(const void*, size_t) { return -1; }
void unguardMapping(int) {}
bool mappingShrank(int) { return false; }

#endif

}  // namespace shortgpt
