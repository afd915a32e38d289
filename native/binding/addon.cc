// The Node-API surface of shortgpt-native. Everything exported here is typed in binding.d.ts,
// and lib/engine/binding.ts is the only module that loads this file.
#include <napi.h>

#include "binding/cuda_binding.h"
#include "binding/heal_binding.h"
#include "binding/io_binding.h"
#include "binding/kernels_binding.h"
#include "binding/session_binding.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm.h"

namespace shortgpt {

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", SHORTGPT_VERSION);
  Napi::Array backends = Napi::Array::New(env);
  backends.Set(0u, "cpu");
  out.Set("backends", backends);
  out.Set("avx2KernelsCompiled",
#if defined(SHORTGPT_X86)
          true
#else
          false
#endif
  );
  return out;
}

static Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Array features = Napi::Array::New(env);
  auto names = cpuFeatureNames();
  for (size_t i = 0; i < names.size(); ++i) features.Set(static_cast<uint32_t>(i), names[i]);
  out.Set("features", features);
  out.Set("kernel", gemmKernelName());
  // Fast mode (--precision bf16): the BF16 kernels this CPU and OS run, best first, and why none
  // where the list is empty.
  Napi::Array bf16 = Napi::Array::New(env);
  const std::vector<std::string> bf16Names = bf16KernelsAvailable();
  for (size_t i = 0; i < bf16Names.size(); ++i) bf16.Set(static_cast<uint32_t>(i), bf16Names[i]);
  out.Set("bf16Kernels", bf16);
  out.Set("bf16Unavailable", bf16Unavailable());
  out.Set("bf16Kernel", bf16KernelName());  // the one precision 'bf16' runs ("" for none)
  out.Set("hardwareThreads", hardwareThreads());
  return out;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  registerKernelExports(env, exports);
  registerSessionExports(env, exports);
  registerCudaExports(env, exports);
  registerIoExports(env, exports);
  registerHealExports(env, exports);
  return exports;
}

}  // namespace shortgpt

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return shortgpt::Init(env, exports); }

NODE_API_MODULE(shortgpt_native, InitAddon)
