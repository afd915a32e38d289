#include "core/file_copy.h"

#include <cerrno>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace shortgpt {

int copyFileRange(int srcFd, int64_t srcOffset, int dstFd, int64_t dstOffset, int64_t length) {
#if defined(__linux__) && defined(SYS_copy_file_range)
  off64_t in = srcOffset, out = dstOffset;
  while (length > 0) {
    // The raw syscall: glibc's wrapper is missing before 2.27, and the syscall is what it calls.
    const ssize_t n = static_cast<ssize_t>(syscall(SYS_copy_file_range, srcFd, &in, dstFd, &out, static_cast<size_t>(length), 0u));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return ENODATA;  // end of the source file
    length -= n;
  }
  return 0;
#else
  (void)srcFd; (void)srcOffset; (void)dstFd; (void)dstOffset; (void)length;
  return ENOSYS;
#endif
}

}  // namespace shortgpt
