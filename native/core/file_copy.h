// Copies a byte range between two open files inside the kernel (Linux copy_file_range(2)), so
// the layer-removal rewrite moves tensor bytes at the speed of a plain file copy without passing
// them through user space (and, on filesystems that support it, shares extents instead).
#pragma once
#include <cstdint>

namespace shortgpt {

// Copies `length` bytes from srcFd at srcOffset to dstFd at dstOffset (file offsets are not
// moved). Returns 0 on success, or the errno of the failure: ENOSYS/EXDEV/EINVAL/EOPNOTSUPP
// mean "not supported for these files" (callers fall back to read/write); ENODATA means the
// source ended before `length` bytes. Not built for other systems: always ENOSYS there.
int copyFileRange(int srcFd, int64_t srcOffset, int dstFd, int64_t dstOffset, int64_t length);

}  // namespace shortgpt
