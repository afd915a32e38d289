#include "binding/io_binding.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "core/file_copy.h"

namespace shortgpt {
namespace {

const char* errnoCode(int e) {
  switch (e) {
    case ENOSYS: return "ENOSYS";
    case EXDEV: return "EXDEV";
    case EINVAL: return "EINVAL";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENODATA: return "ENODATA";
    case EBADF: return "EBADF";
    case ENOSPC: return "ENOSPC";
    case EIO: return "EIO";
    default: return "EIO";
  }
}

// Runs the copy on a libuv worker thread: no Node-API call happens there (the inputs are plain
// integers copied in the constructor), and the result becomes a resolved or rejected Promise.
class CopyWorker : public Napi::AsyncWorker {
 public:
  CopyWorker(Napi::Env env, int src, int64_t srcOff, int dst, int64_t dstOff, int64_t len)
      : Napi::AsyncWorker(env, "shortgpt.copyFileRange"), deferred_(Napi::Promise::Deferred::New(env)),
        src_(src), dst_(dst), srcOff_(srcOff), dstOff_(dstOff), len_(len) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { err_ = copyFileRange(src_, srcOff_, dst_, dstOff_, len_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ == 0) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    Napi::Error e = Napi::Error::New(env, std::string("copy_file_range: ") + std::strerror(err_));
    e.Set("code", errnoCode(err_));
    e.Set("errno", Napi::Number::New(env, err_));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  int src_, dst_;
  int64_t srcOff_, dstOff_, len_;
  int err_ = 0;
};

Napi::Value CopyFileRangeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* names[] = {"srcFd", "srcOffset", "dstFd", "dstOffset", "length"};
  for (size_t i = 0; i < 5; ++i) {
    if (info.Length() <= i || !info[i].IsNumber()) {
      throw Napi::TypeError::New(env, std::string("copyFileRange: ") + names[i] + " must be a number");
    }
    const double v = info[i].As<Napi::Number>().DoubleValue();
    if (!(v >= 0) || v > 9007199254740991.0 || v != static_cast<double>(static_cast<int64_t>(v))) {
      throw Napi::RangeError::New(env, std::string("copyFileRange: ") + names[i] + " must be a non-negative safe integer");
    }
  }
  auto* worker = new CopyWorker(env, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int64Value(),
                                info[2].As<Napi::Number>().Int32Value(), info[3].As<Napi::Number>().Int64Value(),
                                info[4].As<Napi::Number>().Int64Value());
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace

void registerIoExports(Napi::Env env, Napi::Object exports) {
  exports.Set("copyFileRange", Napi::Function::New(env, CopyFileRangeJs, "copyFileRange"));
}

}  // namespace shortgpt
