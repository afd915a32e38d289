// Test and benchmark exports of the CPU kernels (typed in binding.d.ts under "kernels: tests and
// benchmarks"). They run synchronously on the calling thread: they exist for tests and for the
// bench command, not for the scoring path. Every argument is checked before any native code
// touches it, and a bad one throws a TypeError or RangeError that names it.
#include "binding/kernels_binding.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/dtype.h"
#include "core/weights_io.h"
#include "core/thread_pool.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"
#include "cpu/peak.h"

namespace shortgpt {

namespace {

constexpr int kMaxThreads = 1024;
// Test/bench matrices stay far below this; it also keeps m*k etc. far from int64 overflow.
constexpr int64_t kMaxDim = int64_t{1} << 24;

// Argument errors carry code ERR_INVALID_ARG, as the session's do.
[[noreturn]] void throwType(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::TypeError::New(env, msg);
  e.Value().Set("code", "ERR_INVALID_ARG");
  throw e;
}
[[noreturn]] void throwRange(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::RangeError::New(env, msg);
  e.Value().Set("code", "ERR_INVALID_ARG");
  throw e;
}

int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) throwType(env, std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v)) throwRange(env, std::string(name) + " must be an integer");
  if (v < static_cast<double>(lo) || v > static_cast<double>(hi)) {
    throwRange(env, std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                        "], got " + std::to_string(static_cast<int64_t>(v)));
  }
  return static_cast<int64_t>(v);
}

Napi::TypedArray typedArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
                               const char* typeName) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type) {
    throwType(info.Env(), std::string(name) + " must be a " + typeName);
  }
  return info[i].As<Napi::TypedArray>();
}

DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsString()) throwType(info.Env(), std::string(name) + " must be a string");
  try {
    return parseDType(info[i].As<Napi::String>().Utf8Value());
  } catch (const std::invalid_argument& e) {
    throwType(info.Env(), std::string(name) + ": " + e.what());
  }
}

// Runs native work, turning C++ exceptions (bad_alloc, ...) into JavaScript errors.
template <typename F>
auto guarded(Napi::Env env, const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    Napi::Error e = Napi::Error::New(env, std::string(what) + ": out of memory");
    e.Value().Set("code", "ERR_OUT_OF_MEMORY");
    throw e;
  } catch (const std::exception& e) {
    Napi::Error err = Napi::Error::New(env, std::string(what) + " failed: " + e.what());
    err.Value().Set("code", "ERR_NATIVE");
    throw err;
  }
}

// The arguments gemmForTest and gemmBf16ForTest share: x, m, w, dtype, n, k, threads (0-6) and
// y0 (8); argument 7 is each one's kernel choice, read between the two steps below so that the
// errors come in argument order.
struct GemmTestArgs {
  Napi::TypedArray xArr;
  int64_t m;
  Napi::TypedArray wArr;
  DType dtype;
  int64_t n;
  int64_t k;
  int threads;
  bool accumulate = false;
  const float* x() const { return xArr.As<Napi::Float32Array>().Data(); }
  const uint8_t* w() const { return wArr.As<Napi::Uint8Array>().Data(); }
};

GemmTestArgs gemmTestArgs(const Napi::CallbackInfo& info) {
  GemmTestArgs a;
  a.xArr = typedArrayArg(info, 0, "x", napi_float32_array, "Float32Array");
  a.m = intArg(info, 1, "m", 0, kMaxDim);
  a.wArr = typedArrayArg(info, 2, "w", napi_uint8_array, "Uint8Array");
  a.dtype = dtypeArg(info, 3, "dtype");
  a.n = intArg(info, 4, "n", 0, kMaxDim);
  a.k = intArg(info, 5, "k", 0, kMaxDim);
  a.threads = static_cast<int>(intArg(info, 6, "threads", 1, kMaxThreads));
  return a;
}

// Checks x and w hold m*k and n*k values and returns Y (m*n): zeros, or a copy of y0 (argument 8),
// which sets a.accumulate.
Napi::Float32Array gemmTestOutput(const Napi::CallbackInfo& info, GemmTestArgs& a) {
  Napi::Env env = info.Env();
  const int64_t m = a.m, n = a.n, k = a.k;
  const DType dtype = a.dtype;
  if (static_cast<double>(a.xArr.ElementLength()) < static_cast<double>(m) * static_cast<double>(k)) {
    throwRange(env, "x has " + std::to_string(a.xArr.ElementLength()) + " elements, m*k = " + std::to_string(m * k) +
                        " needed");
  }
  const double wNeed = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(dtypeSize(dtype));
  if (static_cast<double>(a.wArr.ByteLength()) < wNeed) {
    throwRange(env, "w has " + std::to_string(a.wArr.ByteLength()) + " bytes, n*k*" +
                        std::to_string(dtypeSize(dtype)) + " = " + std::to_string(static_cast<int64_t>(wNeed)) +
                        " needed for " + dtypeName(dtype));
  }
  a.accumulate = info.Length() > 8 && !info[8].IsUndefined();
  Napi::Float32Array y = Napi::Float32Array::New(env, static_cast<size_t>(m * n));
  float* out = y.Data();
  if (a.accumulate) {
    Napi::TypedArray y0 = typedArrayArg(info, 8, "y0", napi_float32_array, "Float32Array");
    if (static_cast<double>(y0.ElementLength()) < static_cast<double>(m) * static_cast<double>(n)) {
      throwRange(env, "y0 has " + std::to_string(y0.ElementLength()) + " elements, m*n = " +
                          std::to_string(m * n) + " needed");
    }
    std::copy(y0.As<Napi::Float32Array>().Data(), y0.As<Napi::Float32Array>().Data() + m * n, out);
  }
  return y;
}

// gemmForTest(x: Float32Array, m, w: Uint8Array, dtype, n, k, threads, portable?, y0?): Float32Array
// With y0 (m*n values) the GEMM runs in accumulate mode starting from a copy of y0.
Napi::Value GemmForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GemmTestArgs a = gemmTestArgs(info);
  bool portable = false;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!info[7].IsBoolean()) throwType(env, "portable must be a boolean");
    portable = info[7].As<Napi::Boolean>().Value();
  }
  Napi::Float32Array y = gemmTestOutput(info, a);
  guarded(env, "gemmForTest", [&] {
    ThreadPool pool(a.threads);
    PackedWeight packed = PackedWeight::pack(a.w(), a.dtype, a.n, a.k, pool);
    gemm(a.x(), a.m, packed, y.Data(), a.accumulate, pool, portable ? GemmKernel::Portable : GemmKernel::Auto);
  });
  return y;
}

// An array of integers in [lo, hi] (argument i).
std::vector<int64_t> intArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray()) throwType(env, std::string(name) + " must be an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t j = 0; j < a.Length(); ++j) {
    Napi::Value v = a.Get(j);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
      throwRange(env, std::string(name) + "[" + std::to_string(j) + "] must be an integer in [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "]");
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

// attentionForTest(q, k, v, seqLengths, numHeads, numKvHeads, headDim, window, softcap, threads,
// precision, queryFrom?): Float32Array. Causal attention (cpu/attention.h) over sequences laid end
// to end: q [rows, numHeads * headDim], k and v [rows, numKvHeads * headDim], out like q.
// precision 'f32': causalAttention; 'bf16': causalAttentionBf16 (AMX where it runs, else f32).
Napi::Value AttentionForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray q = typedArrayArg(info, 0, "q", napi_float32_array, "Float32Array");
  Napi::TypedArray k = typedArrayArg(info, 1, "k", napi_float32_array, "Float32Array");
  Napi::TypedArray v = typedArrayArg(info, 2, "v", napi_float32_array, "Float32Array");
  const std::vector<int64_t> lengths = intArrayArg(info, 3, "seqLengths", 1, 1 << 16);
  AttentionShape shape;
  shape.numHeads = intArg(info, 4, "numHeads", 1, 256);
  shape.numKvHeads = intArg(info, 5, "numKvHeads", 1, shape.numHeads);
  if (shape.numHeads % shape.numKvHeads != 0) throwRange(env, "numHeads must be a multiple of numKvHeads");
  shape.headDim = intArg(info, 6, "headDim", 1, 1024);
  shape.slidingWindow = intArg(info, 7, "window", 0, 1 << 16);
  if (info.Length() <= 8 || !info[8].IsNumber()) throwType(env, "softcap must be a number");
  shape.softcap = static_cast<float>(info[8].As<Napi::Number>().DoubleValue());
  const int threads = static_cast<int>(intArg(info, 9, "threads", 1, kMaxThreads));
  if (info.Length() <= 10 || !info[10].IsString()) throwType(env, "precision must be a string");
  const std::string precision = info[10].As<Napi::String>().Utf8Value();
  if (precision != "f32" && precision != "bf16") throwType(env, "precision must be 'f32' or 'bf16', got '" + precision + "'");
  std::vector<int64_t> offsets{0};
  for (int64_t len : lengths) offsets.push_back(offsets.back() + len);
  const int64_t rows = offsets.back(), qd = shape.numHeads * shape.headDim, kvd = shape.numKvHeads * shape.headDim;
  std::vector<int64_t> queryFrom;
  const bool withQueryFrom = info.Length() > 11 && !info[11].IsUndefined();
  if (withQueryFrom) {
    queryFrom = intArrayArg(info, 11, "queryFrom", 0, 1 << 16);
    if (queryFrom.size() != lengths.size()) throwRange(env, "queryFrom needs one entry per sequence");
  }
  if (static_cast<int64_t>(q.ElementLength()) != rows * qd) throwRange(env, "q must hold rows * numHeads * headDim values");
  if (static_cast<int64_t>(k.ElementLength()) != rows * kvd) throwRange(env, "k must hold rows * numKvHeads * headDim values");
  if (static_cast<int64_t>(v.ElementLength()) != rows * kvd) throwRange(env, "v must hold rows * numKvHeads * headDim values");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(rows * qd));
  guarded(env, "attentionForTest", [&] {
    ThreadPool pool(threads);
    std::vector<float> kt;
    std::vector<uint16_t, CacheAlignedAllocator<uint16_t>> kv16;
    const float* qp = q.As<Napi::Float32Array>().Data();
    const float* kp = k.As<Napi::Float32Array>().Data();
    const float* vp = v.As<Napi::Float32Array>().Data();
    const std::vector<int64_t>* from = withQueryFrom ? &queryFrom : nullptr;
    if (precision == "bf16") {
      causalAttentionBf16(qp, qd, kp, vp, kvd, out.Data(), qd, offsets, shape, pool, kt, kv16, from);
    } else {
      causalAttention(qp, qd, kp, vp, kvd, out.Data(), qd, offsets, shape, pool, kt, from);
    }
  });
  return out;
}

// Argument 7 of gemmBf16ForTest / gemmBf16StreamedForTest: 'auto', 'amx-bf16' or 'avx512-bf16'.
// A kernel this CPU cannot run throws an Error with code ERR_PRECISION_UNAVAILABLE.
Bf16Kernel bf16KernelArg(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() <= 7 || !info[7].IsString()) throwType(env, "kernel must be a string");
  const std::string kernelName = info[7].As<Napi::String>().Utf8Value();
  Bf16Kernel kernel = Bf16Kernel::Auto;
  if (kernelName == "amx-bf16") kernel = Bf16Kernel::Amx;
  else if (kernelName == "avx512-bf16") kernel = Bf16Kernel::Avx512Bf16;
  else if (kernelName != "auto") throwType(env, "kernel must be 'auto', 'amx-bf16' or 'avx512-bf16', got '" + kernelName + "'");
  if (!bf16KernelAvailable(kernel)) {
    Napi::Error e = Napi::Error::New(env, std::string(fn) + ": kernel '" + kernelName + "' is not available on this machine" +
                                              (bf16Unavailable().empty() ? std::string() : ": " + bf16Unavailable()));
    e.Value().Set("code", "ERR_PRECISION_UNAVAILABLE");
    throw e;
  }
  return kernel;
}

// gemmBf16ForTest(x, m, w, dtype, n, k, threads, kernel, y0?): Float32Array
// The fast-mode GEMM (cpu/gemm_bf16.h) on W packed first, with a chosen kernel.
Napi::Value GemmBf16ForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GemmTestArgs a = gemmTestArgs(info);
  const Bf16Kernel kernel = bf16KernelArg(info, "gemmBf16ForTest");
  Napi::Float32Array y = gemmTestOutput(info, a);
  guarded(env, "gemmBf16ForTest", [&] {
    ThreadPool pool(a.threads);
    PackedWeightBf16 packed = PackedWeightBf16::pack(a.w(), a.dtype, a.n, a.k, pool);
    gemmBf16(a.x(), a.m, packed, y.Data(), a.accumulate, pool, kernel);
  });
  return y;
}

// Argument 9 of the streamed GEMM tests: W's rows split into stacked parts of partRows[i] rows
// (summing to n); default one part.
std::vector<int64_t> partRowsArg(const Napi::CallbackInfo& info, int64_t n) {
  Napi::Env env = info.Env();
  std::vector<int64_t> partRows;
  if (info.Length() > 9 && !info[9].IsUndefined()) {
    if (!info[9].IsArray()) throwType(env, "partRows must be an array of row counts");
    Napi::Array arr = info[9].As<Napi::Array>();
    int64_t sum = 0;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const Napi::Value v = arr.Get(i);
      if (!v.IsNumber() || v.As<Napi::Number>().Int64Value() < 0) throwType(env, "partRows must hold non-negative integers");
      partRows.push_back(v.As<Napi::Number>().Int64Value());
      sum += partRows.back();
    }
    if (sum != n) throwRange(env, "partRows sum to " + std::to_string(sum) + ", n = " + std::to_string(n));
  } else {
    partRows.push_back(n);
  }
  return partRows;
}

// The test's W as stacked parts read where they lie (cpu/weight_rows.h).
WeightRows stackedRows(const GemmTestArgs& a, const std::vector<int64_t>& partRows) {
  WeightRows w;
  w.k = a.k;
  int64_t row = 0;
  for (const int64_t rows : partRows) {
    w.parts.push_back({a.w() + static_cast<size_t>(row * a.k) * dtypeSize(a.dtype), a.dtype, rows});
    row += rows;
  }
  return w;
}

// The shared body of the streamed GEMM tests: `run(W as stacked parts, y, pool)` returns whether
// every weight read was finite; the result is {y, finite}.
template <typename Run>
Napi::Value streamedGemmTest(const Napi::CallbackInfo& info, const char* name, GemmTestArgs& a, Run run) {
  Napi::Env env = info.Env();
  Napi::Float32Array y = gemmTestOutput(info, a);
  const std::vector<int64_t> partRows = partRowsArg(info, a.n);
  bool finite = true;
  guarded(env, name, [&] {
    ThreadPool pool(a.threads);
    finite = run(stackedRows(a, partRows), y.Data(), pool);
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("y", y);
  out.Set("finite", Napi::Boolean::New(env, finite));
  return out;
}

// gemmBf16StreamedForTest(x, m, w, dtype, n, k, threads, kernel, y0?, partRows?): {y, finite}
// The same product with W read where it lies (gemmBf16Streamed), W's rows split into stacked
// parts of partRows[i] rows (summing to n; default one part); finite is false when a weight read
// was NaN or Inf.
Napi::Value GemmBf16StreamedForTest(const Napi::CallbackInfo& info) {
  GemmTestArgs a = gemmTestArgs(info);
  const Bf16Kernel kernel = bf16KernelArg(info, "gemmBf16StreamedForTest");
  return streamedGemmTest(info, "gemmBf16StreamedForTest", a, [&](const WeightRows& w, float* y, ThreadPool& pool) {
    return gemmBf16Streamed(a.x(), a.m, w, y, a.accumulate, pool, kernel);
  });
}

// gemmStreamedForTest(x, m, w, dtype, n, k, threads, portable?, y0?, partRows?): {y, finite}
// Exact mode's GEMM with W read where it lies (gemmStreamed), otherwise as gemmForTest.
Napi::Value GemmStreamedForTest(const Napi::CallbackInfo& info) {
  GemmTestArgs a = gemmTestArgs(info);
  bool portable = false;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!info[7].IsBoolean()) throwType(info.Env(), "portable must be a boolean");
    portable = info[7].As<Napi::Boolean>().Value();
  }
  return streamedGemmTest(info, "gemmStreamedForTest", a, [&](const WeightRows& w, float* y, ThreadPool& pool) {
    return gemmStreamed(a.x(), a.m, w, y, a.accumulate, pool, portable ? GemmKernel::Portable : GemmKernel::Auto);
  });
}

// mappedTensorShrinkForTest(file, offset, bytes, truncateTo): {shrank, sum, code?, message?}
// Maps bytes [offset, offset + bytes) of `file` as MappedTensor does, truncates the file to
// truncateTo bytes, then reads every mapped byte (their sum) and asks the tensor whether it
// shrank (core/map_guard.h): without the guard, the read past the new end is a SIGBUS.
Napi::Value MappedTensorShrinkForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString()) throwType(env, "mappedTensorShrinkForTest(file, offset, bytes, truncateTo)");
  TensorRef ref;
  ref.file = info[0].As<Napi::String>().Utf8Value();
  ref.name = "test";
  ref.offset = intArg(info, 1, "offset", 0, int64_t{1} << 40);
  ref.dtype = DType::BF16;
  ref.shape = {intArg(info, 2, "bytes", 2, int64_t{1} << 34) / 2};
  const int64_t truncateTo = intArg(info, 3, "truncateTo", 0, int64_t{1} << 40);
  Napi::Object out = Napi::Object::New(env);
  guarded(env, "mappedTensorShrinkForTest", [&] {
    MappedTensor map(ref);
    if (::truncate(ref.file.c_str(), static_cast<off_t>(truncateTo)) != 0) throw std::runtime_error("truncate failed");
    const volatile uint8_t* bytes = static_cast<const uint8_t*>(map.data());
    double sum = 0;
    for (int64_t i = 0; i < map.byteLength(); ++i) sum += bytes[i];
    out.Set("shrank", Napi::Boolean::New(env, map.shrank()));
    out.Set("sum", Napi::Number::New(env, sum));
    try {
      map.throwIfShrank();
    } catch (const EngineError& e) {
      out.Set("code", Napi::String::New(env, e.code()));
      out.Set("message", Napi::String::New(env, e.what()));
    }
  });
  return out;
}

// convertToF32ForTest(bytes: Uint8Array, dtype): Float32Array
Napi::Value ConvertToF32ForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray bytesArr = typedArrayArg(info, 0, "bytes", napi_uint8_array, "Uint8Array");
  const DType dtype = dtypeArg(info, 1, "dtype");
  const size_t size = dtypeSize(dtype);
  if (bytesArr.ByteLength() % size != 0) {
    throwRange(env, "bytes has " + std::to_string(bytesArr.ByteLength()) + " bytes, not a multiple of " +
                        std::to_string(size) + " for " + dtypeName(dtype));
  }
  const size_t count = bytesArr.ByteLength() / size;
  Napi::Float32Array out = Napi::Float32Array::New(env, count);
  const uint8_t* src = bytesArr.As<Napi::Uint8Array>().Data();
  convertToF32(src, dtype, out.Data(), count);
  return out;
}

// benchGemm(m, n, k, threads, iterations, precision?): { seconds, gflops, bestSeconds, packSeconds, kernel }
// Synthetic F32 data; `seconds` is the mean time of one GEMM (gflops from it), `bestSeconds` the
// fastest run (robust on a busy machine), packing timed separately.
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = intArg(info, 0, "m", 1, kMaxDim);
  const int64_t n = intArg(info, 1, "n", 1, kMaxDim);
  const int64_t k = intArg(info, 2, "k", 1, kMaxDim);
  const int threads = static_cast<int>(intArg(info, 3, "threads", 1, kMaxThreads));
  const int64_t iterations = intArg(info, 4, "iterations", 1, 1000000);
  // Optional 6th argument: 'f32' (default) or 'bf16' (the fast-mode GEMM, cpu/gemm_bf16.h).
  bool bf16 = false;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    const std::string p = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
    if (p != "f32" && p != "bf16") throwType(env, "precision must be 'f32' or 'bf16'");
    bf16 = p == "bf16";
    if (bf16 && !bf16KernelAvailable(Bf16Kernel::Auto)) {
      Napi::Error e = Napi::Error::New(env, "benchGemm: precision 'bf16' needs a BF16 GEMM kernel: " + bf16Unavailable());
      e.Value().Set("code", "ERR_PRECISION_UNAVAILABLE");
      throw e;
    }
  }
  double seconds = 0, bestSeconds = 0, packSeconds = 0;
  guarded(env, "benchGemm", [&] {
    std::vector<float> x(static_cast<size_t>(m * k)), w(static_cast<size_t>(n * k)), y(static_cast<size_t>(m * n));
    // Deterministic values in [-1, 1): a small LCG, so runs are comparable.
    uint32_t state = 12345;
    auto next = [&] {
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
    };
    for (float& v : x) v = next();
    for (float& v : w) v = next();
    ThreadPool pool(threads);
    const auto p0 = std::chrono::steady_clock::now();
    PackedWeight packed;
    PackedWeightBf16 packedBf16;
    if (bf16) packedBf16 = PackedWeightBf16::pack(w.data(), DType::F32, n, k, pool);
    else packed = PackedWeight::pack(w.data(), DType::F32, n, k, pool);
    const auto p1 = std::chrono::steady_clock::now();
    packSeconds = std::chrono::duration<double>(p1 - p0).count();
    auto run = [&] {
      if (bf16) gemmBf16(x.data(), m, packedBf16, y.data(), false, pool);
      else gemm(x.data(), m, packed, y.data(), false, pool);
    };
    run();  // warm-up: caches, page faults, worker wake-up
    double total = 0;
    bestSeconds = 0;
    for (int64_t i = 0; i < iterations; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      total += dt;
      bestSeconds = i == 0 ? dt : std::min(bestSeconds, dt);
    }
    seconds = total / static_cast<double>(iterations);
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("seconds", seconds);
  out.Set("gflops", 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / seconds / 1e9);
  out.Set("bestSeconds", bestSeconds);
  out.Set("packSeconds", packSeconds);
  out.Set("kernel", bf16 ? bf16KernelName() : gemmKernelName());
  return out;
}

// measureFmaPeak(threads): GFLOP/s
Napi::Value MeasureFmaPeak(const Napi::CallbackInfo& info) {
  const int threads = static_cast<int>(intArg(info, 0, "threads", 1, kMaxThreads));
  return Napi::Number::New(info.Env(), guarded(info.Env(), "measureFmaPeak", [&] { return measureFmaPeakGflops(threads); }));
}

// threadPoolForTest(n, threads, rounds, throwInChunk, nested): { chunks, visits }
// Runs parallelFor(n) `rounds` times on one pool; `visits[i]` counts how often index i was
// visited, `chunks` lists [begin, end, worker] of the last round. A chunk whose worker index is
// `throwInChunk` throws (to test propagation); `nested` runs a parallelFor inside every chunk.
Napi::Value ThreadPoolForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t n = intArg(info, 0, "n", 0, kMaxDim);
  const int threads = static_cast<int>(intArg(info, 1, "threads", 1, kMaxThreads));
  const int64_t rounds = intArg(info, 2, "rounds", 1, 1000000);
  const int64_t throwIn = intArg(info, 3, "throwInChunk", -1, kMaxThreads);
  if (info.Length() <= 4 || !info[4].IsBoolean()) throwType(env, "nested must be a boolean");
  const bool nested = info[4].As<Napi::Boolean>().Value();
  std::vector<std::vector<int64_t>> chunks(static_cast<size_t>(threads));
  std::vector<int32_t> visits(static_cast<size_t>(n), 0);
  guarded(env, "threadPoolForTest", [&] {
    ThreadPool pool(threads);
    for (int64_t r = 0; r < rounds; ++r) {
      pool.parallelFor(n, [&](int64_t begin, int64_t end, int worker) {
        if (worker == throwIn) throw std::runtime_error("chunk " + std::to_string(worker) + " failed");
        chunks[static_cast<size_t>(worker)] = {begin, end, worker};
        if (nested) {
          pool.parallelFor(end - begin, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) ++visits[static_cast<size_t>(begin + i)];
          });
        } else {
          for (int64_t i = begin; i < end; ++i) ++visits[static_cast<size_t>(i)];
        }
      });
    }
  });
  Napi::Object out = Napi::Object::New(env);
  Napi::Array list = Napi::Array::New(env);
  uint32_t count = 0;
  for (const auto& c : chunks) {
    if (c.empty()) continue;
    Napi::Array triple = Napi::Array::New(env, 3);
    for (uint32_t j = 0; j < 3; ++j) triple.Set(j, static_cast<double>(c[j]));
    list.Set(count++, triple);
  }
  out.Set("chunks", list);
  Napi::Int32Array v = Napi::Int32Array::New(env, visits.size());
  std::copy(visits.begin(), visits.end(), v.Data());
  out.Set("visits", v);
  return out;
}

}  // namespace

void registerKernelExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmForTest", Napi::Function::New(env, GemmForTest, "gemmForTest"));
  exports.Set("gemmBf16ForTest", Napi::Function::New(env, GemmBf16ForTest, "gemmBf16ForTest"));
  exports.Set("gemmStreamedForTest", Napi::Function::New(env, GemmStreamedForTest, "gemmStreamedForTest"));
  exports.Set("mappedTensorShrinkForTest", Napi::Function::New(env, MappedTensorShrinkForTest, "mappedTensorShrinkForTest"));
  exports.Set("gemmBf16StreamedForTest", Napi::Function::New(env, GemmBf16StreamedForTest, "gemmBf16StreamedForTest"));
  exports.Set("attentionForTest", Napi::Function::New(env, AttentionForTest, "attentionForTest"));
  exports.Set("convertToF32ForTest", Napi::Function::New(env, ConvertToF32ForTest, "convertToF32ForTest"));
  exports.Set("benchGemm", Napi::Function::New(env, BenchGemm, "benchGemm"));
  exports.Set("threadPoolForTest", Napi::Function::New(env, ThreadPoolForTest, "threadPoolForTest"));
  exports.Set("measureFmaPeak", Napi::Function::New(env, MeasureFmaPeak, "measureFmaPeak"));
}

}  // namespace shortgpt
