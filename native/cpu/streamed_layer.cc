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
      refs_[part].push_back(*ref);
      rows_[part].parts.push_back({maps_[part].back()->data(), ref->dtype, ref->shape[0]});
    }
  }
}

void StreamedLayer::release() {
  for (int part = 0; part < kLayerParts; ++part) {
    rows_[part] = WeightRows();
    refs_[part].clear();
    maps_[part].clear();
  }
}

void StreamedLayer::gemm(int part, const float* x, int64_t m, float* y, bool accumulate, ThreadPool& pool) const {
  const bool finite = bf16 ? gemmBf16Streamed(x, m, rows_[part], y, accumulate, pool)
                            : gemmStreamed(x, m, rows_[part], y, accumulate, pool);
  checkRead(part, finite);
}

void StreamedLayer::gemmSwiglu(const float* x, int64_t m, float* act, ThreadPool& pool) const {
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
  for (size_t i = 0; i < refs_[part].size(); ++i) {
    const TensorRef& ref = refs_[part][i];
    const uint8_t* bytes = static_cast<const uint8_t*>(maps_[part][i]->data());
    const int64_t elements = ref.elements();
    const size_t elem = dtypeSize(ref.dtype);
    const ConvertToF32Fn convert = converterToF32(ref.dtype);
    for (int64_t e0 = 0; e0 < elements; e0 += kChunk) {
      const int64_t count = std::min(kChunk, elements - e0);
      convert(bytes + static_cast<size_t>(e0) * elem, f32.data(), static_cast<size_t>(count));
      if (const int64_t j = firstNonFinite(f32.data(), count); j >= 0) throwNonFiniteWeight(ref, e0 + j, f32[static_cast<size_t>(j)]);
    }
  }
  // Unreachable unless the file changed under the mapping between the GEMM and this scan.
  throw EngineError("ERR_IO", "a non-finite weight was read from " + refs_[part].front().name +
                                  " but is no longer in its file (was the checkpoint modified while in use?)");
}

}  // namespace shortgpt
