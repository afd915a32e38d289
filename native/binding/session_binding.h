// The `Session` class of the addon (typed in binding.d.ts, section `// session`).
#pragma once
#include <napi.h>

namespace shortgpt {

// Adds `Session` to the addon's exports; called once from addon.cc's Init.
void registerSessionExports(Napi::Env env, Napi::Object exports);

}  // namespace shortgpt
