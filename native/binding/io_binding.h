// File I/O exports used by the TypeScript rewrite (lib/prune/copyRange.ts).
#pragma once
#include <napi.h>

namespace shortgpt {

// Adds copyFileRange(srcFd, srcOffset, dstFd, dstOffset, length): Promise<void> to `exports`.
void registerIoExports(Napi::Env env, Napi::Object exports);

}  // namespace shortgpt
