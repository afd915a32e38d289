// A JavaScript Error carrying a stable `code` (ERR_INVALID_ARG, ERR_SHAPE, ...), shared by the
// bindings that throw synchronously or reject a promise with one.
#pragma once
#include <napi.h>

#include <string>

namespace shortgpt {

inline Napi::Error codedError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

[[noreturn]] inline void throwCoded(Napi::Env env, const std::string& code, const std::string& message) {
  throw codedError(env, code, message);
}

}  // namespace shortgpt
