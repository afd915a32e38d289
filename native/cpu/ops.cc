#include "cpu/ops.h"

#include <cmath>

#include "cpu/cpu_features.h"

namespace shortgpt {

namespace {

// The normalisation factor of one vector. The mean of squares is accumulated in double: it is
// cheap, and it keeps the result close to a float64 reference. Eight partial sums (element i
// goes to sum i % 8, added up in a fixed order at the end) instead of one serial chain, so the
// compiler can vectorise it; the order depends only on n, never on threads or the CPU.
inline float rmsScale(const float* x, int64_t n, float eps) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) part[l] += static_cast<double>(x[i + l]) * x[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) part[l] += static_cast<double>(x[i]) * x[i];
  const double ss = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  return static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
}

}  // namespace

void rmsNorm(const float* x, int64_t xStride, float* y, int64_t yStride, int64_t rows, int64_t dim,
             const float* w, float eps, ThreadPool& pool) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * xStride;
      float* yr = y + r * yStride;
      float s = rmsScale(xr, dim, eps);
      // HF order: (x * rsqrt(var + eps)) in f32, then * weight.
      for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * s) * w[i];
    }
  });
}

void headRmsNorm(float* x, int64_t stride, int64_t rows, int64_t heads, int64_t headDim,
                 const float* w, float eps, ThreadPool& pool) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * stride + h * headDim;
        float s = rmsScale(v, headDim, eps);
        for (int64_t i = 0; i < headDim; ++i) v[i] = (v[i] * s) * w[i];
      }
    }
  });
}

void addBias(float* y, int64_t stride, int64_t rows, const float* b, int64_t n, ThreadPool& pool) {
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      float* yr = y + r * stride;
      for (int64_t i = 0; i < n; ++i) yr[i] += b[i];
    }
  });
}

RopeTable RopeTable::build(const ModelSpec& spec, int64_t maxPositions) {
  RopeTable t;
  t.half = spec.headDim / 2;
  t.positions = maxPositions;
  std::vector<double> invFreq(static_cast<size_t>(t.half));
  const double pi = 3.14159265358979323846;
  const RopeScalingSpec& rs = spec.ropeScaling;
  for (int64_t i = 0; i < t.half; ++i) {
    // transformers: inv_freq = 1 / base^(arange(0, dim, 2) / dim)
    double f = 1.0 / std::pow(spec.ropeTheta, static_cast<double>(2 * i) / static_cast<double>(spec.headDim));
    if (rs.type == RopeScalingSpec::Type::Linear) {
      f /= rs.factor;
    } else if (rs.type == RopeScalingSpec::Type::Llama3) {
      // transformers' _compute_llama3_parameters: long wavelengths are divided by `factor`,
      // short ones kept, the band between interpolated smoothly.
      double lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
      double highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
      double wavelen = 2 * pi / f;
      double scaled = wavelen > lowWavelen ? f / rs.factor : f;
      bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      if (medium) {
        double smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        scaled = (1 - smooth) * scaled / rs.factor + smooth * scaled;
      }
      f = scaled;
    }
    invFreq[static_cast<size_t>(i)] = f;
  }
  t.cos.resize(static_cast<size_t>(maxPositions * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t p = 0; p < maxPositions; ++p) {
    for (int64_t i = 0; i < t.half; ++i) {
      double a = static_cast<double>(p) * invFreq[static_cast<size_t>(i)];
      t.cos[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::cos(a));
      t.sin[static_cast<size_t>(p * t.half + i)] = static_cast<float>(std::sin(a));
    }
  }
  return t;
}

void applyRope(float* x, int64_t stride, int64_t rows, int64_t heads, int64_t headDim,
               const int32_t* positions, const RopeTable& table, ThreadPool& pool) {
  const int64_t half = headDim / 2;
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* c = table.cos.data() + static_cast<int64_t>(positions[r]) * half;
      const float* s = table.sin.data() + static_cast<int64_t>(positions[r]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * stride + h * headDim;
        // rotate_half: out = x * cos + [-x2, x1] * sin, with cos/sin repeated over both halves.
        for (int64_t i = 0; i < half; ++i) {
          float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c[i] - x2 * s[i];
          v[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  });
}

namespace {
void swigluSpanPortable(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = (g[i] / (1.0f + std::exp(-g[i]))) * u[i];
}
}  // namespace

SwigluSpanFn swigluSpanFn() {
#if defined(SHORTGPT_X86)
  if (useAvx2Kernels()) return swigluSpanAvx2;
#endif
  return swigluSpanPortable;
}

void swiglu(const float* gateUp, float* out, int64_t rows, int64_t inter, ThreadPool& pool) {
  const SwigluSpanFn span = swigluSpanFn();
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) span(gateUp + r * 2 * inter, gateUp + r * 2 * inter + inter, out + r * inter, inter);
  });
}

}  // namespace shortgpt
