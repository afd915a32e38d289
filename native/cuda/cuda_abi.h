/*
 * The C ABI between the Node addon (or any host: the benchmark, Python's ctypes in
 * scripts/cuda_parity.py) and libshortgpt_cuda.so. The addon never links CUDA: it dlopens the
 * shared object only when a CUDA device is asked for and looks up ONE symbol,
 * `shortgpt_cuda_api_v1`, a function returning a table of plain C function pointers. Plain C
 * types only (no C++ classes, no CUDA headers) so that the table is stable across compilers.
 *
 * Versioning: a host checks `abi_version == SHORTGPT_CUDA_ABI_VERSION` and
 * `struct_size >= sizeof(ShortGptCudaApi)` it was compiled with. Fields are only ever appended.
 *
 * Errors: every function returning int returns 0 on success, nonzero on failure; the failure's
 * stable code ("ERR_CUDA_OOM", "ERR_SHAPE", ...) and message are then read with
 * last_error_code()/last_error_message(), which are thread-local (read them on the thread that
 * made the failing call).
 *
 * Layouts (row-major, Hugging Face names):
 *   weights     [out_features, in_features] in the checkpoint dtype, host memory, read only
 *   activations the residual stream [total_tokens, hidden_size] f32 on the device; sequences
 *               are concatenated and each starts at position 0
 */
#ifndef SHORTGPT_CUDA_ABI_H
#define SHORTGPT_CUDA_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHORTGPT_CUDA_ABI_VERSION 1u
#define SHORTGPT_CUDA_API_SYMBOL "shortgpt_cuda_api_v1"
#define SHORTGPT_CUDA_MAX_DEVICES 16

/* Element types, numbered like native/core/dtype.h's DType. */
enum { SG_DTYPE_F32 = 0, SG_DTYPE_F16 = 1, SG_DTYPE_BF16 = 2 };

/* How F32 checkpoints are multiplied (16-bit checkpoints always use their own dtype). */
enum {
  SG_GEMM_F32_TF32 = 0, /* default: TF32 tensor cores, f32 accumulation */
  SG_GEMM_F32_BF16 = 1, /* weights converted to BF16 on the device */
  SG_GEMM_F32_EXACT = 2 /* plain f32 (no TF32): the parity tests' 1e-4 mode */
};

/* RoPE scaling, as in transformers' ROPE_INIT_FUNCTIONS. */
enum { SG_ROPE_NONE = 0, SG_ROPE_LINEAR = 1, SG_ROPE_LLAMA3 = 2 };

typedef struct ShortGptCudaDevice {
  int ordinal;
  char name[256];
  int computeMajor, computeMinor;
  int multiprocessors;
  uint64_t totalBytes;
  uint64_t freeBytes; /* always 0 from probe(), which creates no context; see deviceMemory() */
} ShortGptCudaDevice;

typedef struct ShortGptCudaProbe {
  int usable;            /* 1 when a device AND cuBLAS are usable */
  int deviceCount;
  int driverVersion;     /* cudaDriverGetVersion, 0 when no driver */
  int runtimeVersion;    /* the cudart linked in */
  char reason[1024];     /* why not usable ("" when usable) */
  char cublasLibrary[512]; /* the cuBLAS file that loaded, or "" */
  ShortGptCudaDevice devices[SHORTGPT_CUDA_MAX_DEVICES];
} ShortGptCudaProbe;

typedef struct ShortGptCudaSpec {
  int hiddenSize, intermediateSize, numHeads, numKvHeads, headDim, vocabSize;
  float rmsNormEps, ropeTheta;
  int ropeType;                      /* SG_ROPE_* */
  float ropeFactor;                  /* linear and llama3 */
  float ropeLowFreqFactor, ropeHighFreqFactor;
  int ropeOriginalMaxPositions;      /* llama3: original_max_position_embeddings */
  int slidingWindow;                 /* 0 = none; a query at i sees keys j with i - j < window */
  int qkNorm;                        /* Qwen3 per-head q_norm / k_norm */
  int device;                        /* CUDA ordinal */
  int gemmF32;                       /* SG_GEMM_F32_* */
  int64_t batchTokens;               /* tokens per scratch chunk (whole sequences); 0 = auto */
  uint64_t weightCacheBytes;         /* device bytes that may keep layers resident; 0 = stream */
} ShortGptCudaSpec;

/* A host tensor. data == NULL means absent (an optional bias or norm). */
typedef struct ShortGptCudaTensor {
  const void* data;
  int dtype;      /* SG_DTYPE_* */
  int64_t rows;   /* out_features; for a vector its length */
  int64_t cols;   /* in_features; 1 for a vector */
} ShortGptCudaTensor;

/* One decoder layer. Either q,k,v or wPack (Baichuan W_pack, rows [q; k; v]) are given.
   cacheKey identifies the layer's weights (e.g. a hash of its file and offset): a layer whose key
   matches one already on the device (prefetched, or kept resident) is not copied again.
   0 = no identity: always copied. Host addresses are not used as identity (they are reused). */
typedef struct ShortGptCudaLayer {
  uint64_t cacheKey;
  ShortGptCudaTensor inputNorm, q, k, v, wPack, qBias, kBias, vBias, o, oBias, qNorm, kNorm;
  ShortGptCudaTensor postNorm, gate, up, down;
} ShortGptCudaLayer;

/* Raw sums for one layer (lib/scoring turns them into BI, angular distance, relative magnitude). */
typedef struct ShortGptCudaStats {
  double tokens, sumCos, nanCount, sumAngular, sumRelMag;
} ShortGptCudaStats;

typedef struct ShortGptCudaNll {
  double sumNll, predictions, logitsSum;
} ShortGptCudaNll;

/* Where the time and memory of the last forwardLayer went (for the benchmark table). */
typedef struct ShortGptCudaTimings {
  double computeMs;      /* GPU time of the layer's kernels and GEMMs (CUDA events) */
  double transferMs;     /* host time spent staging + copying weights not overlapped */
  double uploadOverlapMs;/* copy time hidden behind compute (prefetch of the next layer) */
  uint64_t peakDeviceBytes; /* high-water mark of this session's device allocations */
} ShortGptCudaTimings;

typedef struct ShortGptCudaSession ShortGptCudaSession;

typedef struct ShortGptCudaApi {
  uint32_t abiVersion;
  uint32_t structSize;
  const char* (*buildInfo)(void); /* "cuda <runtime> archs <list>" */
  int (*probe)(ShortGptCudaProbe* out);
  const char* (*lastErrorCode)(void);
  const char* (*lastErrorMessage)(void);

  /* sequences: tokens[total] ids, lengths[numSequences]. */
  int (*sessionCreate)(const ShortGptCudaSpec* spec, const int32_t* tokens, const int64_t* lengths,
                       int64_t numSequences, ShortGptCudaSession** out);
  /* Fills the residual stream from the embedding table [vocab, hidden]. */
  int (*sessionEmbed)(ShortGptCudaSession* s, const ShortGptCudaTensor* embedTokens);
  /* Runs one layer over every token and returns its statistics. `next` (may be NULL) is the
     layer that will run after this one: its weights are copied on a second stream meanwhile. */
  int (*sessionForwardLayer)(ShortGptCudaSession* s, const ShortGptCudaLayer* layer,
                             const ShortGptCudaLayer* next, ShortGptCudaStats* out);
  /* Final norm + lm_head (vocabulary chunks, stable log-softmax): next-token NLL. */
  int (*sessionNll)(ShortGptCudaSession* s, const ShortGptCudaTensor* finalNorm,
                    const ShortGptCudaTensor* lmHead, ShortGptCudaNll* out);
  /* Copies the residual stream [total, hidden] f32 to host memory (tests). */
  int (*sessionReadHidden)(ShortGptCudaSession* s, float* out, int64_t count);
  /* Copies the given token rows of the residual stream ([count, hidden] f32): last-token states. */
  int (*sessionReadRows)(ShortGptCudaSession* s, const int64_t* rows, int64_t count, float* out);
  int (*sessionTimings)(ShortGptCudaSession* s, ShortGptCudaTimings* out);
  /* Asks a running call to stop at its next chunk boundary (ERR_ABORTED); any thread. */
  void (*sessionCancel)(ShortGptCudaSession* s);
  void (*sessionDestroy)(ShortGptCudaSession* s);

  /* Times a large BF16 GEMM (m = n = k = size) `reps` times: the peak the benchmark quotes. */
  int (*gemmPeakTflops)(int device, int size, int reps, double* tflops);

  /* Replaces the residual stream [total, hidden] f32 from host memory (resuming from a snapshot). */
  int (*sessionWriteHidden)(ShortGptCudaSession* s, const float* in, int64_t count);

  /* Free and total memory of ONE device (cudaMemGetInfo). This creates a CUDA context on that
     device (hundreds of MB), which is why probe() does not do it for every device. */
  int (*deviceMemory)(int device, uint64_t* freeBytes, uint64_t* totalBytes);
} ShortGptCudaApi;

typedef const ShortGptCudaApi* (*ShortGptCudaApiFn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SHORTGPT_CUDA_ABI_H */
