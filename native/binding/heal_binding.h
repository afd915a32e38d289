// The solve and the fold of --heal (issue 13), in double on the CPU (cpu/gram.h).
#pragma once
#include <napi.h>

namespace shortgpt {

// Adds healSolve and healFold to `exports`.
void registerHealExports(Napi::Env env, Napi::Object exports);

}  // namespace shortgpt
