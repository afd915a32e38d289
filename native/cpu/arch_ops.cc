#include "cpu/arch_ops.h"

#include <algorithm>
#include <cmath>

#include "cpu/gated_rows.h"

namespace shortgpt {

void scaleInPlace(float* x, int64_t n, float s, ThreadPool& pool) {
  pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

void scaledResidualAdd(const float* h, float* o, int64_t n, float s, ThreadPool& pool) {
  pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) o[i] = h[i] + o[i] * s;
  });
}

void divideInPlace(float* x, int64_t n, float d, ThreadPool& pool) {
  pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) x[i] /= d;
  });
}

namespace {

// inv_freq_i = 1 / (factor_i * theta^(2i / rotaryDim)) (transformers' _compute_longrope_parameters;
// factor 1 is compute_default_rope_parameters with partial_rotary_factor), cos/sin in double,
// times attentionFactor, rounded to f32.
RopeTable ropeTable(const ModelSpec& spec, int64_t rotaryDim, const std::vector<double>* factors, double attentionFactor,
                    int64_t maxPositions) {
  RopeTable t;
  t.half = rotaryDim / 2;
  t.positions = maxPositions;
  std::vector<double> inv(static_cast<size_t>(t.half));
  for (int64_t i = 0; i < t.half; ++i) {
    const double f = factors ? (*factors)[static_cast<size_t>(i)] : 1.0;
    inv[static_cast<size_t>(i)] = 1.0 / (f * std::pow(spec.ropeTheta, static_cast<double>(2 * i) / static_cast<double>(rotaryDim)));
  }
  t.cos.resize(static_cast<size_t>(maxPositions * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t p = 0; p < maxPositions; ++p) {
    for (int64_t i = 0; i < t.half; ++i) {
      const double a = static_cast<double>(p) * inv[static_cast<size_t>(i)];
      t.cos[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::cos(a) * attentionFactor);
      t.sin[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::sin(a) * attentionFactor);
    }
  }
  return t;
}

}  // namespace

ArchRope buildArchRope(const ModelSpec& spec, int64_t maxPositions) {
  ArchRope r;
  const bool partial = spec.rotaryDim != 0 && spec.rotaryDim != spec.headDim;
  const bool longRope = spec.ropeScaling.type == RopeScalingSpec::Type::LongRope;
  if (!partial && !longRope) return r;
  if (!longRope && spec.ropeScaling.type != RopeScalingSpec::Type::None) {
    throw EngineError("ERR_UNSUPPORTED", "partial rotary embeddings with linear or llama3 rope scaling are not supported");
  }
  r.active = true;
  r.rotaryDim = partial ? spec.rotaryDim : spec.headDim;
  const RopeScalingSpec& rs = spec.ropeScaling;
  if (longRope) {
    r.shortTable = ropeTable(spec, r.rotaryDim, &rs.shortFactor, rs.attentionFactor, maxPositions);
    r.longTable = ropeTable(spec, r.rotaryDim, &rs.longFactor, rs.attentionFactor, maxPositions);
    r.longAbove = static_cast<int64_t>(rs.originalMaxPositionEmbeddings);
  } else {
    r.shortTable = ropeTable(spec, r.rotaryDim, nullptr, 1.0, maxPositions);
  }
  return r;
}

void applyArchRope(float* x, int64_t stride, const int64_t* seqOffsets, int64_t seqBegin, int64_t seqEnd, int64_t rowBegin,
                   int64_t heads, int64_t headDim, const int32_t* positions, const ArchRope& rope, ThreadPool& pool) {
  const int64_t half = rope.rotaryDim / 2;
  for (int64_t s = seqBegin; s < seqEnd; ++s) {
    const int64_t r0 = seqOffsets[s] - rowBegin, r1 = seqOffsets[s + 1] - rowBegin;
    // transformers' longrope_frequency_update: seq_len = max(position_ids) + 1 > original.
    const RopeTable& t = rope.longAbove > 0 && r1 - r0 > rope.longAbove ? rope.longTable : rope.shortTable;
    pool.parallelFor(r1 - r0, [&](int64_t begin, int64_t end, int) {
      for (int64_t r = r0 + begin; r < r0 + end; ++r) {
        const float* c = t.cos.data() + static_cast<int64_t>(positions[r]) * half;
        const float* sn = t.sin.data() + static_cast<int64_t>(positions[r]) * half;
        for (int64_t h = 0; h < heads; ++h) {
          float* v = x + r * stride + h * headDim;
          for (int64_t i = 0; i < half; ++i) {
            const float x1 = v[i], x2 = v[i + half];
            v[i] = x1 * c[i] - x2 * sn[i];
            v[i + half] = x2 * c[i] + x1 * sn[i];
          }
        }
      }
    });
  }
}

bool layerAppliesRope(const ModelSpec& spec, int64_t layer) {
  return std::find(spec.noRopeLayers.begin(), spec.noRopeLayers.end(), layer) == spec.noRopeLayers.end();
}

void addOneToNormWeight(std::vector<float>& w) {
  for (float& x : w) x = 1.0f + x;
}

double roundToDtype(double v, DType dtype) {
  const float f = static_cast<float>(v);
  if (dtype == DType::F32 || f == 0.0f || !std::isfinite(f)) return f;
  // Keep the leading bit and 7 (bf16) or 10 (f16) fraction bits: scale so those are the integer
  // part, round half to even (nearbyint in the default rounding mode), scale back. Exact for
  // the normal range, which a multiplier like sqrt(hidden_size) is in.
  const int bits = dtype == DType::BF16 ? 7 : 10;
  int e = 0;
  std::frexp(f, &e);  // f = m * 2^e, 0.5 <= |m| < 1
  const double scale = std::ldexp(1.0, bits + 1 - e);
  return std::nearbyint(static_cast<double>(f) * scale) / scale;
}

void gegluTanh(const float* gateUp, float* out, int64_t rows, int64_t inter, ThreadPool& pool) {
  // torch's GeluTanh kernel: kBeta = sqrt(2) * (2 / sqrt(pi)) * 0.5, kKappa = 0.044715.
  const float kBeta = static_cast<float>(1.41421356237309504880 * 1.12837916709551257390 * 0.5);
  const float kKappa = 0.044715f;
  gatedRows(gateUp, out, rows, inter, pool, [kBeta, kKappa](float x) {
    const float inner = kBeta * (x + kKappa * x * x * x);
    return 0.5f * x * (1.0f + std::tanh(inner));
  });
}

void softcapInPlace(float* x, int64_t n, float cap, ThreadPool& pool) {
  pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) x[i] = std::tanh(x[i] / cap) * cap;
  });
}

bool layerListed(const std::vector<int64_t>& layers, int64_t layer) {
  return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

const char* healUnsupportedReason(const ModelSpec& spec) {
  if (spec.residualMultiplier != 1.0) return "residual_multiplier != 1 (Granite) scales the MLP output before the residual add";
  if (spec.postNorms) return "OLMo 2's post_feedforward_layernorm normalises the MLP output before the residual add";
  if (spec.gemmaNorms) return "Gemma's post_feedforward_layernorm normalises the MLP output before the residual add";
  if (spec.numExperts > 0) return "a mixture-of-experts MLP's output is a routed sum of experts, not one down_proj's output";
  return nullptr;
}

}  // namespace shortgpt
