#include "cuda/cuda_session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/attention_select.h"
#include "cuda/errors.h"
#include "cuda/kernels.h"

namespace shortgpt::cuda {
namespace {

size_t dtypeBytes(int dt) { return dt == SG_DTYPE_F32 ? 4 : 2; }

cudaDataType_t blasType(int dt) {
  return dt == SG_DTYPE_F32 ? CUDA_R_32F : (dt == SG_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F);
}

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string shapeText(const ShortGptCudaTensor& t) {
  return t.cols == 1 ? "[" + std::to_string(t.rows) + "]" : "[" + std::to_string(t.rows) + ", " + std::to_string(t.cols) + "]";
}

void expectShape(const ShortGptCudaTensor& t, const char* role, int64_t rows, int64_t cols, bool required) {
  if (!t.data) {
    if (required) throw CudaFailure("ERR_MISSING_TENSOR", std::string("layer tensor ") + role + " is missing");
    return;
  }
  if (t.dtype != SG_DTYPE_F32 && t.dtype != SG_DTYPE_F16 && t.dtype != SG_DTYPE_BF16)
    throw CudaFailure("ERR_DTYPE", std::string("layer tensor ") + role + " has dtype code " + std::to_string(t.dtype) +
                                       "; the CUDA backend computes with F32, F16 and BF16");
  if (t.rows != rows || t.cols != cols) {
    ShortGptCudaTensor e{nullptr, 0, rows, cols};
    throw CudaFailure("ERR_SHAPE", std::string("layer tensor ") + role + " has shape " + shapeText(t) + ", expected " + shapeText(e));
  }
}

}  // namespace

CudaSession::CudaSession(const ShortGptCudaSpec& spec, const int32_t* tokens, const int64_t* lengths, int64_t numSequences)
    : spec_(spec) {
  const int H = spec.hiddenSize;
  if (H <= 0 || spec.intermediateSize <= 0 || spec.numHeads <= 0 || spec.numKvHeads <= 0 || spec.headDim <= 0 ||
      spec.vocabSize <= 0)
    throw CudaFailure("ERR_INVALID_ARG", "CUDA session spec: sizes must be positive");
  if (spec.numHeads % spec.numKvHeads != 0)
    throw CudaFailure("ERR_INVALID_ARG", "num_attention_heads " + std::to_string(spec.numHeads) +
                                             " is not a multiple of num_key_value_heads " + std::to_string(spec.numKvHeads));
  if (spec.headDim % 2 != 0 || spec.headDim > 256)
    throw CudaFailure("ERR_INVALID_ARG", "head_dim " + std::to_string(spec.headDim) + ": the CUDA backend needs an even head_dim <= 256");
  if (numSequences <= 0) throw CudaFailure("ERR_INVALID_ARG", "a CUDA session needs at least one sequence");
  simtAttention_ = attentionEnvForcesSimt(std::getenv("SHORTGPT_CUDA_ATTENTION"));
  qDim_ = spec.numHeads * spec.headDim;
  kvDim_ = spec.numKvHeads * spec.headDim;
  qkvDim_ = qDim_ + 2 * kvDim_;

  // Sequences, positions (each sequence starts at 0) and next-token targets (-1 at the end).
  int64_t maxLen = 0;
  for (int64_t s = 0; s < numSequences; ++s) {
    if (lengths[s] <= 0) throw CudaFailure("ERR_INVALID_ARG", "sequence " + std::to_string(s) + " is empty");
    seqStart_.push_back(total_);
    seqLen_.push_back(lengths[s]);
    total_ += lengths[s];
    maxLen = std::max(maxLen, lengths[s]);
  }
  tokensHost_.assign(tokens, tokens + total_);
  std::vector<int32_t> positions(total_), targets(total_);
  for (int64_t s = 0; s < numSequences; ++s) {
    for (int64_t p = 0; p < seqLen_[s]; ++p) {
      const int64_t t = seqStart_[s] + p;
      if (tokensHost_[t] < 0 || tokensHost_[t] >= spec.vocabSize)
        throw CudaFailure("ERR_TOKEN_RANGE", "token " + std::to_string(tokensHost_[t]) + " at sequence " + std::to_string(s) +
                                                 ", position " + std::to_string(p) + " is outside the vocabulary [0, " +
                                                 std::to_string(spec.vocabSize) + ")");
      positions[t] = static_cast<int32_t>(p);
      targets[t] = p + 1 < seqLen_[s] ? tokensHost_[t + 1] : -1;
    }
  }

  // Chunks of whole sequences, at most batchTokens rows each (a longer sequence is its own chunk).
  const int64_t batch = spec.batchTokens > 0 ? spec.batchTokens : 16384;
  for (int64_t s = 0; s < numSequences; ++s) {
    if (chunks_.empty() || (chunks_.back().tokens + seqLen_[s] > batch && chunks_.back().tokens > 0))
      chunks_.push_back(Chunk{seqStart_[s], 0, {}});
    chunks_.back().sequences.emplace_back(seqStart_[s], seqLen_[s]);
    chunks_.back().tokens += seqLen_[s];
  }
  for (const Chunk& c : chunks_) chunkRows_ = std::max(chunkRows_, c.tokens);

  // RoPE tables, in double then rounded, exactly as the CPU backend's RopeTable::build.
  const int half = spec.headDim / 2;
  std::vector<float> cosT(size_t(maxLen) * half), sinT(cosT.size());
  {
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < half; ++i) {
      double f = 1.0 / std::pow(static_cast<double>(spec.ropeTheta), static_cast<double>(2 * i) / spec.headDim);
      if (spec.ropeType == SG_ROPE_LINEAR) {
        f /= spec.ropeFactor;
      } else if (spec.ropeType == SG_ROPE_LLAMA3) {
        const double orig = spec.ropeOriginalMaxPositions, lo = spec.ropeLowFreqFactor, hi = spec.ropeHighFreqFactor;
        const double lowWavelen = orig / lo, highWavelen = orig / hi, wavelen = 2 * pi / f;
        double scaled = wavelen > lowWavelen ? f / spec.ropeFactor : f;
        if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
          const double smooth = (orig / wavelen - lo) / (hi - lo);
          scaled = (1 - smooth) * scaled / spec.ropeFactor + smooth * scaled;
        }
        f = scaled;
      }
      for (int64_t p = 0; p < maxLen; ++p) {
        const double a = static_cast<double>(p) * f;
        cosT[size_t(p) * half + i] = static_cast<float>(std::cos(a));
        sinT[size_t(p) * half + i] = static_cast<float>(std::sin(a));
      }
    }
  }

  // Every resource below is owned by a member (owned.h, DeviceBuffer), so a throw at any step
  // (ERR_CUDA_OOM on the residual stream, typically) releases what the steps before it made.
  SG_CUDA_CHECK(cudaSetDevice(spec.device));  // no driver or device: ERR_CUDA_UNAVAILABLE
  arena_.setFailureInjection(std::getenv("SHORTGPT_CUDA_FAIL_ALLOC"));
  const Cublas& blas = cublas();               // ERR_CUBLAS_MISSING, listing what was tried
  int optin = 0;
  SG_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, spec.device));
  smemOptin_ = static_cast<size_t>(optin);
  SG_CUDA_CHECK(cudaStreamCreateWithFlags(computeOwned_.out(), cudaStreamNonBlocking));
  compute_ = computeOwned_.get();
  SG_CUDA_CHECK(cudaStreamCreateWithFlags(copyOwned_.out(), cudaStreamNonBlocking));
  copy_ = copyOwned_.get();
  SG_CUDA_CHECK(cudaEventCreate(start_.out()));
  SG_CUDA_CHECK(cudaEventCreate(stop_.out()));
  SG_CUBLAS_CHECK(blas.create(blasOwned_.out()));
  blas_ = blasOwned_.get();
  SG_CUBLAS_CHECK(blas.setStream(blas_, compute_));
  // The compute type of each GemmEx call decides TF32 or not; the handle stays at defaults.
  SG_CUBLAS_CHECK(blas.setMathMode(blas_, CUBLAS_DEFAULT_MATH));
  for (int i = 0; i < kStaging; ++i) {
    SG_CUDA_CHECK(cudaHostAlloc(pinned_[i].out(), kStagingBytes, cudaHostAllocDefault));
    SG_CUDA_CHECK(cudaEventCreateWithFlags(pinnedFree_[i].out(), cudaEventDisableTiming));
  }

  tokens_ = arena_.alloc(sizeof(int32_t) * total_, "token ids");
  positions_ = arena_.alloc(sizeof(int32_t) * total_, "token positions");
  targets_ = arena_.alloc(sizeof(int32_t) * total_, "next-token targets");
  ropeCos_ = arena_.alloc(sizeof(float) * cosT.size(), "RoPE cos table");
  ropeSin_ = arena_.alloc(sizeof(float) * sinT.size(), "RoPE sin table");
  // On compute_, then synchronised: a plain cudaMemcpy runs on the legacy default stream, which
  // the non-blocking compute_ does not wait for, and from pageable memory it may return before
  // the bytes reach the device.
  SG_CUDA_CHECK(cudaMemcpyAsync(tokens_.get(), tokensHost_.data(), sizeof(int32_t) * total_, cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaMemcpyAsync(positions_.get(), positions.data(), sizeof(int32_t) * total_, cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaMemcpyAsync(targets_.get(), targets.data(), sizeof(int32_t) * total_, cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaMemcpyAsync(ropeCos_.get(), cosT.data(), sizeof(float) * cosT.size(), cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaMemcpyAsync(ropeSin_.get(), sinT.data(), sizeof(float) * sinT.size(), cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));  // the host vectors die with this constructor

  const int64_t I = spec.intermediateSize;
  hidden_ = arena_.alloc(sizeof(float) * total_ * H, "the residual stream [tokens, hidden] f32");
  perToken_ = arena_.alloc(sizeof(double) * total_ * 4, "per-token statistics");
  sums_ = arena_.alloc(sizeof(double) * 8, "statistic sums");
  snapshot_ = arena_.alloc(sizeof(float) * chunkRows_ * H, "the layer-input snapshot of one chunk");
  // GEMM inputs are allocated at 4 bytes per element so that any GEMM dtype fits.
  normed_ = arena_.alloc(sizeof(float) * chunkRows_ * H, "normalised activations of one chunk");
  qkv_ = arena_.alloc(sizeof(float) * chunkRows_ * qkvDim_, "q/k/v of one chunk");
  attn_ = arena_.alloc(sizeof(float) * chunkRows_ * qDim_, "attention output of one chunk");
  gu_ = arena_.alloc(sizeof(float) * chunkRows_ * 2 * I, "gate/up projections of one chunk");
  act_ = arena_.alloc(sizeof(float) * chunkRows_ * I, "SwiGLU output of one chunk");
  raw_ = arena_.alloc(kConvertBytes, "the weight conversion buffer");
}

CudaSession::~CudaSession() {
  // Nothing here may throw: errors while tearing down are ignored (the process may be exiting).
  // Work in flight must finish before the members release the buffers it reads (pinned staging,
  // weight slots); the members then release themselves in reverse declaration order.
  cudaSetDevice(spec_.device);
  if (compute_) cudaStreamSynchronize(compute_);
  if (copy_) cudaStreamSynchronize(copy_);
}

void CudaSession::checkCancelled() const {
  if (cancelled_.load()) throw CudaFailure("ERR_ABORTED", "the operation was aborted");
}

void CudaSession::uploadBytes(const void* host, size_t bytes, void* dst) {
  const char* src = static_cast<const char*>(host);
  char* d = static_cast<char*>(dst);
  for (size_t off = 0; off < bytes; off += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - off);
    const int i = nextPinned_;
    nextPinned_ = (nextPinned_ + 1) % kStaging;
    SG_CUDA_CHECK(cudaEventSynchronize(pinnedFree_[i].get()));  // its previous copy has left the buffer
    std::memcpy(pinned_[i].get(), src + off, n);
    SG_CUDA_CHECK(cudaMemcpyAsync(d + off, pinned_[i].get(), n, cudaMemcpyHostToDevice, copy_));
    SG_CUDA_CHECK(cudaEventRecord(pinnedFree_[i].get(), copy_));
  }
}

void CudaSession::uploadTensor(const ShortGptCudaTensor& t, void* dst, int dstDt) {
  const int64_t n = t.rows * t.cols;
  const size_t bytes = size_t(n) * dtypeBytes(t.dtype);
  if (t.dtype == dstDt) return uploadBytes(t.data, bytes, dst);
  // Piece by piece through the fixed raw_ buffer. Reusing it is safe without waiting: the next
  // piece's copy into raw_ is queued on copy_ behind the conversion that reads the previous one.
  const size_t srcEs = dtypeBytes(t.dtype), dstEs = dtypeBytes(dstDt);
  const int64_t per = static_cast<int64_t>(raw_.bytes() / srcEs);
  const char* src = static_cast<const char*>(t.data);
  char* d = static_cast<char*>(dst);
  for (int64_t at = 0; at < n; at += per) {
    const int64_t m = std::min(per, n - at);
    uploadBytes(src + size_t(at) * srcEs, size_t(m) * srcEs, raw_.get());
    launchConvert(raw_.get(), t.dtype, d + size_t(at) * dstEs, dstDt, m, copy_);
  }
}

void CudaSession::validateLayer(const ShortGptCudaLayer& w) const {
  const int64_t H = spec_.hiddenSize, I = spec_.intermediateSize, hd = spec_.headDim;
  expectShape(w.inputNorm, "input_layernorm", H, 1, true);
  expectShape(w.postNorm, "post_attention_layernorm", H, 1, true);
  if (w.wPack.data) {
    expectShape(w.wPack, "W_pack", qkvDim_, H, true);
  } else {
    expectShape(w.q, "q_proj", qDim_, H, true);
    expectShape(w.k, "k_proj", kvDim_, H, true);
    expectShape(w.v, "v_proj", kvDim_, H, true);
  }
  expectShape(w.qBias, "q_bias", qDim_, 1, false);
  expectShape(w.kBias, "k_bias", kvDim_, 1, false);
  expectShape(w.vBias, "v_bias", kvDim_, 1, false);
  expectShape(w.o, "o_proj", H, qDim_, true);
  expectShape(w.oBias, "o_bias", H, 1, false);
  expectShape(w.qNorm, "q_norm", hd, 1, spec_.qkNorm != 0);
  expectShape(w.kNorm, "k_norm", hd, 1, spec_.qkNorm != 0);
  expectShape(w.gate, "gate_proj", I, H, true);
  expectShape(w.up, "up_proj", I, H, true);
  expectShape(w.down, "down_proj", H, I, true);
}

int CudaSession::layerGemmDtype(const ShortGptCudaLayer& w) const {
  const int dt = (w.wPack.data ? w.wPack : w.q).dtype;
  if (dt != SG_DTYPE_F32) return dt;  // 16-bit weights stay as they are
  return spec_.gemmF32 == SG_GEMM_F32_BF16 ? SG_DTYPE_BF16 : SG_DTYPE_F32;
}

size_t CudaSession::layerBytes(const ShortGptCudaLayer& w) const {
  const size_t H = spec_.hiddenSize, I = spec_.intermediateSize, es = dtypeBytes(layerGemmDtype(w));
  return align256(size_t(qkvDim_) * H * es) + align256(H * qDim_ * es) + align256(2 * I * H * es) + align256(H * I * es) +
         3 * align256(H * 4) + align256(size_t(qkvDim_) * 4) + 2 * align256(size_t(spec_.headDim) * 4);
}

LayerSlot* CudaSession::findSlot(const ShortGptCudaLayer& w) {
  if (w.cacheKey == 0) return nullptr;
  for (auto& s : slots_)
    if (s->valid && s->key == w.cacheKey) return s.get();
  return nullptr;
}

LayerSlot& CudaSession::slotFor(const ShortGptCudaLayer& w, const LayerSlot* busy) {
  if (LayerSlot* s = findSlot(w)) return *s;
  const size_t need = layerBytes(w);
  if (slots_.empty())
    maxSlots_ = std::max<size_t>(2, spec_.weightCacheBytes / std::max<size_t>(need, 1));
  LayerSlot* slot = nullptr;
  if (slots_.size() < maxSlots_) {
    slots_.push_back(std::make_unique<LayerSlot>());
    slot = slots_.back().get();
    SG_CUDA_CHECK(cudaEventCreateWithFlags(slot->ready.out(), cudaEventDisableTiming));
  } else {
    for (auto& s : slots_)  // least recently used, never the one computing now
      if (s.get() != busy && (!slot || s->lastUse < slot->lastUse)) slot = s.get();
  }
  slot->valid = false;
  if (slot->buf.bytes() < need) {
    slot->buf.reset();
    slot->buf = arena_.alloc(need, "one decoder layer's weights");
  }
  uploadLayer(w, *slot);
  return *slot;
}

void CudaSession::uploadLayer(const ShortGptCudaLayer& w, LayerSlot& s) {
  const size_t H = spec_.hiddenSize, I = spec_.intermediateSize, hd = spec_.headDim;
  s.gemmDt = layerGemmDtype(w);
  const size_t es = dtypeBytes(s.gemmDt);
  size_t off = 0;
  auto take = [&off](size_t bytes) { const size_t at = off; off += align256(bytes); return at; };
  s.offQkv = take(size_t(qkvDim_) * H * es);
  s.offO = take(H * qDim_ * es);
  s.offGu = take(2 * I * H * es);
  s.offDown = take(H * I * es);
  s.offInNorm = take(H * 4);
  s.offPostNorm = take(H * 4);
  s.offOBias = take(H * 4);
  s.offQkvBias = take(size_t(qkvDim_) * 4);
  s.offQNorm = take(hd * 4);
  s.offKNorm = take(hd * 4);
  char* base = s.buf.as<char>();

  if (w.wPack.data) {
    uploadTensor(w.wPack, base + s.offQkv, s.gemmDt);
  } else {
    uploadTensor(w.q, base + s.offQkv, s.gemmDt);
    uploadTensor(w.k, base + s.offQkv + size_t(qDim_) * H * es, s.gemmDt);
    uploadTensor(w.v, base + s.offQkv + size_t(qDim_ + kvDim_) * H * es, s.gemmDt);
  }
  uploadTensor(w.o, base + s.offO, s.gemmDt);
  uploadTensor(w.gate, base + s.offGu, s.gemmDt);
  uploadTensor(w.up, base + s.offGu + I * H * es, s.gemmDt);
  uploadTensor(w.down, base + s.offDown, s.gemmDt);
  uploadTensor(w.inputNorm, base + s.offInNorm, SG_DTYPE_F32);
  uploadTensor(w.postNorm, base + s.offPostNorm, SG_DTYPE_F32);
  s.hasQkvBias = w.qBias.data || w.kBias.data || w.vBias.data;
  if (s.hasQkvBias) {  // absent parts of a partial bias are zero
    SG_CUDA_CHECK(cudaMemsetAsync(base + s.offQkvBias, 0, size_t(qkvDim_) * 4, copy_));
    if (w.qBias.data) uploadTensor(w.qBias, base + s.offQkvBias, SG_DTYPE_F32);
    if (w.kBias.data) uploadTensor(w.kBias, base + s.offQkvBias + size_t(qDim_) * 4, SG_DTYPE_F32);
    if (w.vBias.data) uploadTensor(w.vBias, base + s.offQkvBias + size_t(qDim_ + kvDim_) * 4, SG_DTYPE_F32);
  }
  s.hasOBias = w.oBias.data != nullptr;
  if (s.hasOBias) uploadTensor(w.oBias, base + s.offOBias, SG_DTYPE_F32);
  s.hasQkNorm = w.qNorm.data && w.kNorm.data;
  if (s.hasQkNorm) {
    uploadTensor(w.qNorm, base + s.offQNorm, SG_DTYPE_F32);
    uploadTensor(w.kNorm, base + s.offKNorm, SG_DTYPE_F32);
  }
  SG_CUDA_CHECK(cudaEventRecord(s.ready.get(), copy_));
  s.key = w.cacheKey;
  s.valid = true;
}

void CudaSession::gemm(const void* W, int dt, const void* x, int64_t rows, int in, int out, float* y, int64_t ldy,
                       bool accumulate) {
  // Row-major y[rows, out] = x[rows, in] * W[out, in]^T is, column-major, y^T = W^T' x^T:
  // A = W viewed column-major [in, out] (lda = in) transposed, B = x^T [in, rows] (ldb = in).
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  const cublasComputeType_t ct =
      dt == SG_DTYPE_F32 ? (spec_.gemmF32 == SG_GEMM_F32_EXACT ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32)
                         : CUBLAS_COMPUTE_32F;
  SG_CUBLAS_CHECK(cublas().gemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, out, static_cast<int>(rows), in, &alpha, W,
                                  blasType(dt), in, x, blasType(dt), in, &beta, y, CUDA_R_32F, static_cast<int>(ldy), ct,
                                  CUBLAS_GEMM_DEFAULT));
}

void CudaSession::runChunk(const Chunk& c, const LayerSlot& s) {
  const int H = spec_.hiddenSize, I = spec_.intermediateSize;
  const int64_t rows = c.tokens;
  const char* base = s.buf.as<const char>();
  const size_t es = dtypeBytes(s.gemmDt);
  float* h = hidden_.as<float>() + c.begin * H;
  auto f32 = [&](size_t off) { return reinterpret_cast<const float*>(base + off); };

  SG_CUDA_CHECK(cudaMemcpyAsync(snapshot_.get(), h, sizeof(float) * rows * H, cudaMemcpyDeviceToDevice, compute_));
  // Attention block: h += o_proj(attention(rope(q), rope(k), v)) on input_layernorm(h).
  launchRmsNorm(h, H, f32(s.offInNorm), spec_.rmsNormEps, rows, H, normed_.get(), s.gemmDt, compute_);
  gemm(base + s.offQkv, s.gemmDt, normed_.get(), rows, H, qkvDim_, qkv_.as<float>(), qkvDim_, false);
  // Tensor cores for attention when the layer computes in 16 bits, head_dim suits WMMA and the
  // kernel's shared memory fits this device (attention_select.h).
  const bool tc = chooseAttentionKernel(spec_.headDim, s.gemmDt, smemOptin_, simtAttention_) == AttentionKernel::TensorCore;
  if (tc && !qkv16_.get()) qkv16_ = arena_.alloc(size_t(chunkRows_) * qkvDim_ * 2, "16-bit q/k/v of one chunk");
  QkvPostArgs qp{qkv_.as<float>(), rows, positions_.as<int32_t>() + c.begin,
                 s.hasQkvBias ? f32(s.offQkvBias) : nullptr,
                 s.hasQkNorm ? f32(s.offQNorm) : nullptr, s.hasQkNorm ? f32(s.offKNorm) : nullptr,
                 tc ? qkv16_.get() : nullptr, s.gemmDt,
                 ropeCos_.as<float>(), ropeSin_.as<float>(), spec_.rmsNormEps,
                 spec_.numHeads, spec_.numKvHeads, spec_.headDim};
  launchQkvPost(qp, compute_);
  for (const auto& [first, len] : c.sequences) {
    const int64_t r0 = first - c.begin;
    AttentionArgs aa{qkv_.as<float>() + r0 * qkvDim_, attn_.as<char>() + size_t(r0) * qDim_ * es, s.gemmDt, len,
                     spec_.numHeads, spec_.numKvHeads, spec_.headDim, spec_.slidingWindow,
                     static_cast<float>(1.0 / std::sqrt(static_cast<double>(spec_.headDim)))};
    if (tc) launchAttentionTc(qkv16_.as<char>() + size_t(r0) * qkvDim_ * 2, aa, compute_);
    else launchAttention(aa, compute_);
  }
  gemm(base + s.offO, s.gemmDt, attn_.get(), rows, qDim_, H, h, H, true);
  if (s.hasOBias) launchAddBias(h, H, f32(s.offOBias), rows, H, compute_);
  // MLP block: h += down(silu(gate(x)) * up(x)) on post_attention_layernorm(h).
  launchRmsNorm(h, H, f32(s.offPostNorm), spec_.rmsNormEps, rows, H, normed_.get(), s.gemmDt, compute_);
  gemm(base + s.offGu, s.gemmDt, normed_.get(), rows, H, 2 * I, gu_.as<float>(), 2 * int64_t(I), false);
  launchSwiGlu(gu_.as<float>(), rows, I, act_.get(), s.gemmDt, compute_);
  gemm(base + s.offDown, s.gemmDt, act_.get(), rows, I, H, h, H, true);
  // Block Influence statistics of this chunk's tokens: layer input (snapshot) vs output (h).
  launchTokenStats(snapshot_.as<float>(), h, rows, H, perToken_.as<double>() + c.begin * 4, compute_);
}

void CudaSession::embed(const ShortGptCudaTensor& table) {
  checkCancelled();
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));  // the device is per host thread; calls come from any
  expectShape(table, "embed_tokens", spec_.vocabSize, spec_.hiddenSize, true);
  const size_t bytes = size_t(table.rows) * table.cols * dtypeBytes(table.dtype);
  DeviceBuffer dev = arena_.alloc(bytes, "the embedding table");
  uploadBytes(table.data, bytes, dev.get());
  SG_CUDA_CHECK(cudaStreamSynchronize(copy_));
  launchEmbedGather(dev.get(), table.dtype, tokens_.as<int32_t>(), total_, spec_.hiddenSize, hidden_.as<float>(), compute_);
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  embedded_ = true;
}

ShortGptCudaStats CudaSession::forwardLayer(const ShortGptCudaLayer& w, const ShortGptCudaLayer* next) {
  checkCancelled();
  if (!embedded_) throw CudaFailure("ERR_STATE", "forwardLayer before embed");
  validateLayer(w);
  if (next) {
    try {
      validateLayer(*next);
    } catch (const CudaFailure&) {
      next = nullptr;  // only a hint: the bad layer fails, naming its tensor, when it runs
    }
  }
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));

  lastTransferMs_ = lastOverlapMs_ = 0;
  LayerSlot* slot = findSlot(w);
  if (!slot) {  // not prefetched: the copy is on the critical path
    const auto t0 = std::chrono::steady_clock::now();
    slot = &slotFor(w, nullptr);
    SG_CUDA_CHECK(cudaEventSynchronize(slot->ready.get()));
    lastTransferMs_ = msSince(t0);
  }
  slot->lastUse = ++useClock_;
  SG_CUDA_CHECK(cudaStreamWaitEvent(compute_, slot->ready.get(), 0));

  SG_CUDA_CHECK(cudaEventRecord(start_.get(), compute_));
  for (const Chunk& c : chunks_) {
    checkCancelled();
    runChunk(c, *slot);
  }
  launchReduceColumns(perToken_.as<double>(), total_, 4, sums_.as<double>(), compute_);
  SG_CUDA_CHECK(cudaEventRecord(stop_.get(), compute_));

  // While the GPU computes, copy the next layer in through the pinned buffers on the copy stream.
  if (next && next->cacheKey != 0 && !findSlot(*next)) {  // keyless layers cannot be matched later
    const auto t0 = std::chrono::steady_clock::now();
    slotFor(*next, slot);
    lastOverlapMs_ = msSince(t0);
  }

  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  double sums[4];
  SG_CUDA_CHECK(cudaMemcpy(sums, sums_.get(), sizeof sums, cudaMemcpyDeviceToHost));
  float ms = 0;
  SG_CUDA_CHECK(cudaEventElapsedTime(&ms, start_.get(), stop_.get()));
  lastComputeMs_ = ms;
  return ShortGptCudaStats{static_cast<double>(total_), sums[0], sums[3], sums[1], sums[2]};
}

ShortGptCudaNll CudaSession::nll(const ShortGptCudaTensor& finalNorm, const ShortGptCudaTensor& lmHead) {
  checkCancelled();
  if (!embedded_) throw CudaFailure("ERR_STATE", "nll before embed");
  const int H = spec_.hiddenSize;
  const int64_t V = spec_.vocabSize;
  expectShape(finalNorm, "norm", H, 1, true);
  expectShape(lmHead, "lm_head", V, H, true);
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));
  int dt = lmHead.dtype;
  if (dt == SG_DTYPE_F32 && spec_.gemmF32 == SG_GEMM_F32_BF16) dt = SG_DTYPE_BF16;
  const size_t es = dtypeBytes(dt);

  DeviceBuffer norm = arena_.alloc(sizeof(float) * H, "the final norm");
  DeviceBuffer head = arena_.alloc(size_t(V) * H * es, "lm_head");
  uploadTensor(finalNorm, norm.get(), SG_DTYPE_F32);
  uploadTensor(lmHead, head.get(), dt);
  SG_CUDA_CHECK(cudaStreamSynchronize(copy_));

  const int64_t rowsPer = std::min<int64_t>(chunkRows_, 4096);
  const int64_t vocabPer = std::max<int64_t>(1, std::min<int64_t>(V, (int64_t(256) << 20) / 4 / rowsPer));
  DeviceBuffer logits = arena_.alloc(sizeof(float) * rowsPer * vocabPer, "a logits chunk");
  DeviceBuffer run = arena_.alloc(sizeof(double) * total_ * 4, "log-softmax running sums");
  double* runMax = run.as<double>();
  double* runSum = runMax + total_;
  double* target = runSum + total_;
  double* rowSum = target + total_;
  launchFillDouble(runMax, total_, -INFINITY, compute_);
  launchFillDouble(runSum, total_ * 3, 0.0, compute_);

  for (int64_t t0 = 0; t0 < total_; t0 += rowsPer) {
    checkCancelled();
    const int64_t rows = std::min(rowsPer, total_ - t0);
    launchRmsNorm(hidden_.as<float>() + t0 * H, H, norm.as<float>(), spec_.rmsNormEps, rows, H, normed_.get(), dt, compute_);
    for (int64_t v0 = 0; v0 < V; v0 += vocabPer) {
      const int vc = static_cast<int>(std::min(vocabPer, V - v0));
      gemm(head.as<char>() + size_t(v0) * H * es, dt, normed_.get(), rows, H, vc, logits.as<float>(), vc, false);
      launchLogitsChunk(LogitsChunkArgs{logits.as<float>(), rows, vc, v0, targets_.as<int32_t>() + t0, runMax + t0,
                                        runSum + t0, target + t0, rowSum + t0},
                        compute_);
    }
  }
  launchNllFinalize(runMax, runSum, target, rowSum, targets_.as<int32_t>(), total_, perToken_.as<double>(), compute_);
  launchReduceColumns(perToken_.as<double>(), total_, 3, sums_.as<double>(), compute_);
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  double sums[3];
  SG_CUDA_CHECK(cudaMemcpy(sums, sums_.get(), sizeof sums, cudaMemcpyDeviceToHost));
  return ShortGptCudaNll{sums[0], sums[1], sums[2]};
}

void CudaSession::readHidden(float* out, int64_t count) {
  if (count != total_ * spec_.hiddenSize)
    throw CudaFailure("ERR_INVALID_ARG", "readHidden: the buffer holds " + std::to_string(count) + " floats, expected " +
                                             std::to_string(total_ * spec_.hiddenSize));
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  SG_CUDA_CHECK(cudaMemcpy(out, hidden_.get(), sizeof(float) * count, cudaMemcpyDeviceToHost));
}

void CudaSession::writeHidden(const float* in, int64_t count) {
  if (count != total_ * spec_.hiddenSize)
    throw CudaFailure("ERR_INVALID_ARG", "writeHidden: the buffer holds " + std::to_string(count) + " floats, expected " +
                                             std::to_string(total_ * spec_.hiddenSize));
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));
  // On compute_ and synchronised before returning: a legacy-stream cudaMemcpy from pageable
  // memory may return before the bytes land, and the next forwardLayer's kernels on the
  // non-blocking compute_ would not wait for it (a restore() could feed them stale residuals).
  SG_CUDA_CHECK(cudaMemcpyAsync(hidden_.get(), in, sizeof(float) * count, cudaMemcpyHostToDevice, compute_));
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  embedded_ = true;
}

void CudaSession::readRows(const int64_t* rows, int64_t count, float* out) {
  const int H = spec_.hiddenSize;
  SG_CUDA_CHECK(cudaSetDevice(spec_.device));
  SG_CUDA_CHECK(cudaStreamSynchronize(compute_));
  for (int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= total_)
      throw CudaFailure("ERR_INVALID_ARG", "readRows: row " + std::to_string(rows[i]) + " outside [0, " + std::to_string(total_) + ")");
    SG_CUDA_CHECK(cudaMemcpy(out + i * H, hidden_.as<float>() + rows[i] * H, sizeof(float) * H, cudaMemcpyDeviceToHost));
  }
}

ShortGptCudaTimings CudaSession::timings() const {
  return ShortGptCudaTimings{lastComputeMs_, lastTransferMs_, lastOverlapMs_, arena_.peakBytes()};
}

}  // namespace shortgpt::cuda
