// Synchronous on the calling thread (with a thread pool of `threads`): at hidden 4096 the solve
// is ~23 GFLOP in double, seconds, once per cut; the statistics pass dominates.
#include "binding/heal_binding.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "binding/coded_error.h"
#include "core/thread_pool.h"
#include "cpu/gram.h"

namespace shortgpt {

namespace {

Napi::Float64Array f64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throwCoded(info.Env(), "ERR_INVALID_ARG", std::string(fn) + ": " + what + " must be a Float64Array");
  }
  return info[i].As<Napi::Float64Array>();
}

int64_t count(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) throwCoded(info.Env(), "ERR_INVALID_ARG", std::string(fn) + ": " + what + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || std::floor(d) != d || d > 1e9) throwCoded(info.Env(), "ERR_INVALID_ARG", std::string(fn) + ": " + what + " must be a positive integer");
  return static_cast<int64_t>(d);
}

// healSolve(A [n*n], ridge, B [n*m] (overwritten with X), n, m, threads) -> -1 or the first
// non-positive pivot of A + ridge I.
Napi::Value HealSolve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float64Array a = f64(info, 0, "healSolve", "A");
  if (info.Length() <= 1 || !info[1].IsNumber()) throwCoded(env, "ERR_INVALID_ARG", "healSolve: ridge must be a number");
  const double ridge = info[1].As<Napi::Number>().DoubleValue();
  if (!(ridge >= 0) || !std::isfinite(ridge)) throwCoded(env, "ERR_INVALID_ARG", "healSolve: ridge must be finite and >= 0");
  Napi::Float64Array b = f64(info, 2, "healSolve", "B");
  const int64_t n = count(info, 3, "healSolve", "n"), m = count(info, 4, "healSolve", "m"), threads = count(info, 5, "healSolve", "threads");
  if (static_cast<int64_t>(a.ElementLength()) != n * n || static_cast<int64_t>(b.ElementLength()) != n * m) {
    throwCoded(env, "ERR_SHAPE", "healSolve: A must hold n*n and B n*m values");
  }
  ThreadPool pool(static_cast<int>(std::min<int64_t>(threads, 1024)));
  return Napi::Number::New(env, static_cast<double>(choleskySolve(a.Data(), ridge, b.Data(), n, m, pool)));
}

// healFold(A [k*n], W [k*m], k, n, m, threads) -> Aᵀ W as a new Float64Array [n*m].
Napi::Value HealFold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float64Array a = f64(info, 0, "healFold", "A");
  Napi::Float64Array w = f64(info, 1, "healFold", "W");
  const int64_t k = count(info, 2, "healFold", "k"), n = count(info, 3, "healFold", "n"), m = count(info, 4, "healFold", "m"),
                threads = count(info, 5, "healFold", "threads");
  if (static_cast<int64_t>(a.ElementLength()) != k * n || static_cast<int64_t>(w.ElementLength()) != k * m) {
    throwCoded(env, "ERR_SHAPE", "healFold: A must hold k*n and W k*m values");
  }
  Napi::Float64Array c = Napi::Float64Array::New(env, static_cast<size_t>(n * m));
  ThreadPool pool(static_cast<int>(std::min<int64_t>(threads, 1024)));
  transposeTimes(a.Data(), w.Data(), k, n, m, c.Data(), pool);
  return c;
}

}  // namespace

void registerHealExports(Napi::Env env, Napi::Object exports) {
  exports.Set("healSolve", Napi::Function::New(env, HealSolve, "healSolve"));
  exports.Set("healFold", Napi::Function::New(env, HealFold, "healFold"));
}

}  // namespace shortgpt
