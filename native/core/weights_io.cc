#include "core/weights_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/finite.h"
#include "core/map_guard.h"

namespace shortgpt {

namespace {

std::string where(const TensorRef& ref) { return "tensor '" + ref.name + "' in " + ref.file; }

}  // namespace

TensorReader::TensorReader(const TensorRef& ref) : ref_(ref) {
  if (ref.offset < 0) throw EngineError("ERR_IO", where(ref) + ": negative offset " + std::to_string(ref.offset));
  fd_ = ::open(ref.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw EngineError("ERR_IO", "cannot open " + ref.file + " (for tensor '" + ref.name + "'): " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    throw EngineError("ERR_IO", "cannot stat " + ref.file + ": " + std::strerror(e));
  }
  // The whole tensor must fit, not only the range asked for: a truncated file is an error even
  // when the rows we need happen to be present.
  if (ref.offset + ref.byteLength() > static_cast<int64_t>(st.st_size)) {
    ::close(fd_);
    throw EngineError("ERR_IO", where(ref) + ": bytes [" + std::to_string(ref.offset) + ", " +
                                    std::to_string(ref.offset + ref.byteLength()) + ") lie past the end of the file (" +
                                    std::to_string(static_cast<int64_t>(st.st_size)) + " bytes)");
  }
}

TensorReader::~TensorReader() {
  if (fd_ >= 0) ::close(fd_);
}

void TensorReader::read(int64_t byteBegin, int64_t byteCount, void* dst) const {
  if (byteBegin < 0 || byteCount < 0 || byteBegin + byteCount > ref_.byteLength()) {
    throw EngineError("ERR_IO", where(ref_) + ": read of bytes [" + std::to_string(byteBegin) + ", " +
                                    std::to_string(byteBegin + byteCount) + ") is outside the tensor");
  }
  auto* out = static_cast<uint8_t*>(dst);
  int64_t done = 0;
  while (done < byteCount) {
    ssize_t got = ::pread(fd_, out + done, static_cast<size_t>(byteCount - done), static_cast<off_t>(ref_.offset + byteBegin + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw EngineError("ERR_IO", "cannot read " + where(ref_) + ": " + std::strerror(errno));
    }
    if (got == 0) throw EngineError("ERR_IO", "unexpected end of file reading " + where(ref_));
    done += got;
  }
}

MappedTensor::MappedTensor(const TensorRef& ref) : ref_(ref), bytes_(ref.byteLength()) {
  static const uint8_t kEmpty = 0;
  data_ = &kEmpty;  // a valid pointer for an empty tensor (null means "absent" to some callers)
  if (bytes_ <= 0) return;
  TensorReader reader(ref);  // opens and checks the file size, with the same ERR_IO messages
  const int fd = ::open(ref.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const int64_t page = ::sysconf(_SC_PAGESIZE) > 0 ? ::sysconf(_SC_PAGESIZE) : 4096;
    const int64_t start = ref.offset - ref.offset % page;
    const size_t len = static_cast<size_t>(ref.offset + bytes_ - start);
    void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
    ::close(fd);  // the mapping keeps the file
    if (m != MAP_FAILED) {
      map_ = m;
      mapBytes_ = len;
      guard_ = guardMapping(map_, mapBytes_);
      data_ = static_cast<const uint8_t*>(m) + (ref.offset - start);
      ::madvise(map_, mapBytes_, MADV_SEQUENTIAL);
      return;
    }
  }
  copy_.resize(static_cast<size_t>(bytes_));
  reader.read(0, bytes_, copy_.data());
  data_ = copy_.data();
}

MappedTensor::~MappedTensor() {
  unguardMapping(guard_);
  if (map_) ::munmap(map_, mapBytes_);
}

bool MappedTensor::shrank() const { return mappingShrank(guard_); }

void MappedTensor::throwIfShrank() const {
  if (shrank()) {
    throw EngineError("ERR_IO", where(ref_) + ": the file became shorter while it was being read (was the checkpoint "
                                              "overwritten during the run?)");
  }
}

void MappedTensor::willNeed() const {
  if (map_) ::madvise(map_, mapBytes_, MADV_WILLNEED);
}

void readTensorRange(const TensorRef& ref, int64_t byteBegin, int64_t byteCount, void* dst) {
  TensorReader(ref).read(byteBegin, byteCount, dst);
}

std::vector<uint8_t> readTensorBytes(const TensorRef& ref) {
  std::vector<uint8_t> bytes(static_cast<size_t>(ref.byteLength()));
  readTensorRange(ref, 0, ref.byteLength(), bytes.data());
  return bytes;
}

std::vector<float> readTensorF32(const TensorRef& ref) {
  std::vector<uint8_t> bytes = readTensorBytes(ref);
  std::vector<float> out(static_cast<size_t>(ref.elements()));
  convertToF32(bytes.data(), ref.dtype, out.data(), out.size());
  checkWeightFinite(ref, out.data(), static_cast<int64_t>(out.size()), 0);
  return out;
}

}  // namespace shortgpt
