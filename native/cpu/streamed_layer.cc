#include "cpu/streamed_layer.h"

#include <algorithm>
#include <cstring>

#include "core/finite.h"

namespace shortgpt {

void StreamedLayer::map(const ModelSpec& spec, const LayerRefs& w) {
  release();
  for (int part = 0; part < kLayerParts; ++part) {
    rows_[part].k = layerPartK(spec, part);
    for (const TensorRef* ref : layerPartRefs(spec, w, part)) {
      maps_[part].push_back(std::make_unique<MappedTensor>(*ref));
      rows_[part].parts.push_back({maps_[part].back()->data(), ref->dtype, ref->shape[0]});
    }
  }
}

void StreamedLayer::release() {
  for (int part = 0; part < kLayerParts; ++part) {
    rows_[part] = WeightRows();
    maps_[part].clear();
  }
}

void StreamedLayer::gemm(int part, const float* x, int64_t m, float* y, bool accumulate, ThreadPool& pool) const {
  const bool finite = bf16_ ? gemmBf16Streamed(x, m, rows_[part], y, accumulate, pool)
                            : gemmStreamed(x, m, rows_[part], y, accumulate, pool);
  checkRead(part, finite);
}

void StreamedLayer::gemm(int part, const Bf16Activations& x, int64_t m, float* y, bool accumulate, ThreadPool& pool) const {
  checkRead(part, gemmBf16Streamed(x, m, rows_[part], y, accumulate, pool));
}

void StreamedLayer::gemmAddTo(int part, const float* x, int64_t m, const float* base, float* y, ThreadPool& pool) const {
  checkRead(part, gemmBf16StreamedAddTo(x, m, rows_[part], base, y, pool));
}

void StreamedLayer::gemmSwiglu(const float* x, int64_t m, const Bf16Activations& act, ThreadPool& pool) const {
  const bool finite = gemmBf16StreamedSwiglu(x, m, rows_[2], act, pool);
  checkRead(2, finite);
}

void StreamedLayer::checkRead(int part, bool finite) const {
  // A file that shrank under its mapping read as zeros (core/map_guard.h): that comes first.
  for (const auto& map : maps_[part]) map->throwIfShrank();
  if (!finite) throwFirstNonFinite(part);
}

void StreamedLayer::throwFirstNonFinite(int part) const {
  // Chunks of f32 for the 16- and 32-bit dtypes alike (the message gives the value in f32).
  constexpr int64_t kChunk = 1 << 16;
  std::vector<float> f32(static_cast<size_t>(kChunk));
  for (const auto& map : maps_[part]) {
    const TensorRef& ref = map->ref();
    const uint8_t* bytes = static_cast<const uint8_t*>(map->data());
    const int64_t elements = ref.elements();
    const size_t elem = dtypeSize(ref.dtype);
    const ConvertToF32Fn convert = converterToF32(ref.dtype);
    for (int64_t e0 = 0; e0 < elements; e0 += kChunk) {
      const int64_t count = std::min(kChunk, elements - e0);
      convert(bytes + static_cast<size_t>(e0) * elem, f32.data(), static_cast<size_t>(count));
      checkWeightFinite(ref, f32.data(), count, e0);
    }
  }
  // Unreachable unless the file changed under the mapping between the GEMM and this scan.
  throw EngineError("ERR_IO", "a non-finite weight was read from " + maps_[part].front()->ref().name +
                                  " but is no longer in its file (was the checkpoint modified while in use?)");
}

}  // namespace shortgpt
