// The exact surface of the native addon (build/Release/shortgpt_native.node or
// prebuilds/<platform>-<arch>/shortgpt-native.napi.node). Only lib/engine/binding.ts loads it;
// everything else in lib/ goes through that module.

export interface NativeBuildInfo {
  /** The package version the binary was built from (package.json at build time). */
  version: string;
  /** Backends compiled into this binary, e.g. ["cpu"] or ["cpu", "cuda"]. */
  backends: string[];
  /** Whether the AVX2/FMA kernels were compiled in (x86-64 builds). */
  avx2KernelsCompiled: boolean;
}

export interface NativeCpuInfo {
  /** CPU features detected at run time that the kernels care about. */
  features: string[];
  /** The GEMM micro-kernel that will run (AVX-512 where the CPU has it, else AVX2/FMA, else portable). */
  kernel: 'avx512' | 'avx2-fma' | 'portable';
  /**
   * The BF16 GEMM kernels of fast mode (precision 'bf16') this CPU and OS run, best first:
   * 'amx-bf16' (Intel AMX tiles, granted by Linux's arch_prctl), 'avx512-bf16' (VDPBF16PS).
   * Empty where fast mode is unavailable; `bf16Unavailable` then says why ('' otherwise).
   */
  bf16Kernels: Array<'amx-bf16' | 'avx512-bf16'>;
  bf16Unavailable: string;
  /** The BF16 kernel precision 'bf16' runs now ('' for none): the first of bf16Kernels unless SHORTGPT_NO_AMX=1. */
  bf16Kernel: '' | 'amx-bf16' | 'avx512-bf16';
  /** std::thread::hardware_concurrency(), at least 1. */
  hardwareThreads: number;
}

// session: the layer-streaming forward pass (native/binding/session_binding.cc)

/** Where a weight tensor's bytes are; the native side reads them itself. */
export interface NativeTensorRef {
  /** The tensor's name, for error messages. */
  name?: string;
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  offset: number;
  dtype: string;
  shape: number[];
}

export type NativeRopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  /** Phi-3 LongRoPE: a sequence longer than originalMaxPositionEmbeddings uses longFactor, others shortFactor (rotaryDim / 2 each). */
  | { type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPositionEmbeddings: number; attentionFactor: number };

/** What the engine needs of a model config (lib/engine/modelSpec.ts builds it). */
export interface NativeModelSpec {
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: NativeRopeScaling;
  /** 0: full causal attention. */
  slidingWindow: number;
  qkNorm: boolean;
  attentionBias: boolean;
  fusedQkv: boolean;
  /** o_proj has a bias (role 'o_bias'): Llama / Qwen3 with attention_bias. Default false. */
  outputBias?: boolean;
  /** Baichuan 2 NormHead: lm_head rows scaled to unit L2 norm before the logits. Default false. */
  normalizedLmHead?: boolean;
  /** Granite embedding_multiplier: embeddings times this (default 1). */
  embeddingMultiplier?: number;
  /** Granite residual_multiplier: attention and MLP outputs times this before each residual add (default 1). */
  residualMultiplier?: number;
  /** Granite attention_multiplier: the attention score scale; 0 or absent: 1/sqrt(headDim). */
  attentionScale?: number;
  /** Granite logits_scaling: logits divided by this (default 1). */
  logitsScaling?: number;
  /**
   * SmolLM3: indices of the layers (forwardLayer's `layer`) that apply no rotary embedding.
   * Default none. The CUDA backend refuses a spec that sets any of the issue-14 fields below
   * (these five, postNorms, fusedGateUp, rotaryDim, longrope, the Gemma fields, numExperts) with
   * ERR_UNSUPPORTED naming the missing piece.
   */
  noRopeLayers?: number[];
  /**
   * OLMo 2: no input_layernorm; post_attention_layernorm normalises the attention output and
   * post_feedforward_layernorm the MLP output, each before its residual add; with qkNorm, q_norm /
   * k_norm cover the whole projection ([numHeads * headDim], [numKvHeads * headDim]). Default false.
   */
  postNorms?: boolean;
  /** Phi-3: the MLP's gate and up projections come as one 'gate_up_proj' tensor [2 * intermediate, hidden]. Default false. */
  fusedGateUp?: boolean;
  /** Rotated dimensions of each head (even, <= headDim; Phi-3 partial_rotary_factor). 0 or absent: headDim. */
  rotaryDim?: number;
  /**
   * Gemma 2/3: RMSNorm weights used as (1 + w) everywhere (final norm and q/k norms too); four
   * norms per layer (input_layernorm, post_attention_layernorm on the attention output,
   * pre_feedforward_layernorm, post_feedforward_layernorm on the MLP output); GeGLU
   * (gelu_pytorch_tanh) instead of SwiGLU. Default false.
   */
  gemmaNorms?: boolean;
  /** embeddingMultiplier rounded to the embedding tensor's dtype first (Gemma: embed_scale.to(weight.dtype)). */
  roundEmbeddingScale?: boolean;
  /** tanh soft-capping of attention scores (after the scale) / of the final logits: cap * tanh(x / cap); 0: none. */
  attnLogitSoftcapping?: number;
  finalLogitSoftcapping?: number;
  /** With slidingWindow: the layers (forwardLayer's index) that attend to every earlier token instead. */
  fullAttentionLayers?: number[];
  /** Gemma 3: RoPE base of the sliding-window layers, unscaled (ropeTheta/ropeScaling: full-attention layers). 0: none. */
  localRopeTheta?: number;
  /**
   * Mixtral / Qwen3-MoE: a layer whose weights include role 'moe_router' ([numExperts, hidden])
   * runs a sparse MLP of numExperts experts (roles 'expert_gate.<e>', 'expert_up.<e>'
   * [moeIntermediateSize, hidden], 'expert_down.<e>' [hidden, moeIntermediateSize]), the
   * numExpertsPerTok most probable per token (softmax of the router logits), their weights
   * renormalised when normTopkProb (the router in f32 also in the bf16 fast mode). CPU backend
   * only. Default 0: none.
   */
  numExperts?: number;
  numExpertsPerTok?: number;
  moeIntermediateSize?: number;
  normTopkProb?: boolean;
}

export interface NativeSessionOptions {
  spec: NativeModelSpec;
  /** Token ids; every id in [0, vocabSize), every sequence non-empty. */
  sequences: Int32Array[];
  threads: number;
  keepLastTokenStates?: boolean;
  /** 'cpu' (default) or 'cuda' (then `cuda` options apply; ERR_CUDA_UNAVAILABLE when it cannot load). */
  device?: 'cpu' | 'cuda';
  cuda?: NativeCudaSessionOptions;
  /**
   * CPU GEMM precision: 'f32' (default) or 'bf16' (fast mode, cpu/gemm_bf16.h). 'bf16' throws
   * ERR_PRECISION_UNAVAILABLE where cpuInfo().bf16Kernels is empty, ERR_INVALID_ARG with device 'cuda'.
   */
  precision?: 'f32' | 'bf16';
  /**
   * Shared prefixes, one entry per sequence in each array: sequence s shares its first
   * lengths[s] tokens with the earlier root sequence parents[s] (-1 and 0: none). Sequences are
   * still given whole; a child's rows (totalTokens, tokenLogprobs, statistics) are only its
   * tokens from lengths[s] on, attending to the parent's prefix. ERR_INVALID_ARG names a bad
   * entry; ERR_UNSUPPORTED where the backend cannot (CUDA, longrope).
   */
  sharedPrefixes?: { parents: Int32Array | number[]; lengths: Int32Array | number[] };
}

/** Raw sums over every token of every sequence, in double. */
export interface NativeLayerStats {
  tokens: number;
  /** An undefined cosine (a zero-norm state) counts as 0.5. */
  sumCos: number;
  /** Tokens whose cosine was undefined because a state was exactly zero (never NaN/Inf: those reject). */
  nanCount: number;
  /** Sum of arccos(cos) / pi. */
  sumAngular: number;
  /** Sum of ||out - in|| / ||out||. */
  sumRelMag: number;
  /**
   * The same sums per sequence (window), sequenceCount entries each, summed in token order within
   * the sequence (bootstrap over windows). Absent where the backend keeps none (CUDA).
   */
  perSequence?: NativePerSequenceStats;
}

/** Per-sequence sums of {@link NativeLayerStats}, one entry per sequence. */
export interface NativePerSequenceStats {
  tokens: Float64Array;
  sumCos: Float64Array;
  nanCount: Float64Array;
  sumAngular: Float64Array;
  sumRelMag: Float64Array;
}

export interface NativeNllStats {
  sumNll: number;
  predictions: number;
  logitsSum: number;
}

/** Per row of the residual stream (totalTokens entries, sequences in order). */
export interface NativeTokenLogprobs extends NativeNllStats {
  /** log p(next token); NaN for each sequence's last token. -sum (row order) === sumNll. */
  logprob: Float64Array;
  /** argmax of the next-token distribution (the lowest id among equal maxima). */
  argmax: Int32Array;
  /** 1 where the next token is the argmax (0 for a last token). */
  targetIsArgmax: Uint8Array;
}

/** The reference model's side of {@link NativeSession.divergence}. */
export interface NativeReferenceHead {
  /** The reference session's snapshot() after its last layer: same sequences, same hidden size. */
  residual: Float32Array;
  finalNorm: NativeTensorRef;
  lmHead: NativeTensorRef;
  rmsNormEps: number;
  normalizedLmHead?: boolean;
}

/** Per row (totalTokens entries): KL(reference || this), both logprobs (NaN for a last token), both argmaxes. */
export interface NativeDivergence {
  kl: Float64Array;
  referenceLogprob: Float64Array;
  logprob: Float64Array;
  referenceArgmax: Int32Array;
  argmax: Int32Array;
}

export interface NativeLastTokenStates {
  sequences: number;
  hiddenSize: number;
  /** The layer each entry follows (-1: the embedding), in call order. */
  layers: number[];
  /** [layers.length, sequences, hiddenSize] f32. */
  data: Float32Array;
}

/**
 * Async methods reject with an Error whose `code` is one of ERR_INVALID_ARG, ERR_DTYPE,
 * ERR_SHAPE, ERR_MISSING_TENSOR, ERR_UNEXPECTED_TENSOR, ERR_IO, ERR_OUT_OF_MEMORY, ERR_ABORTED,
 * ERR_STATE, ERR_BUSY (one operation at a time), ERR_DISPOSED, ERR_INTERNAL, ERR_NONFINITE_WEIGHT
 * (a NaN/Inf weight: tensor, element, [row, col]), ERR_NONFINITE_ACTIVATION (a layer's output:
 * sequence, position, hidden index), ERR_NONFINITE_LOGITS (nll). The constructor
 * throws ERR_INVALID_ARG / ERR_TOKEN_RANGE / ERR_OUT_OF_MEMORY.
 */
export interface NativeSession {
  readonly totalTokens: number;
  readonly sequenceCount: number;
  embed(table: NativeTensorRef): Promise<void>;
  /**
   * weights: role (LayerTensorRole) -> tensor. onProgress(layer, sequencesDone, sequencesTotal).
   * next: the weights of the layer that will run after this one, a prefetch hint (the CUDA
   * backend copies them while this layer computes; the CPU backend ignores it). A `next` that
   * fails validation is ignored here and reported when it runs.
   */
  forwardLayer(
    layer: number, weights: Record<string, NativeTensorRef>,
    onProgress?: (layer: number, done: number, total: number) => void,
    next?: Record<string, NativeTensorRef>,
  ): Promise<NativeLayerStats>;
  nll(finalNorm: NativeTensorRef, lmHead: NativeTensorRef): Promise<NativeNllStats>;
  /** nll() keeping every row's logprob and argmax (ERR_UNSUPPORTED on CUDA). */
  tokenLogprobs(finalNorm: NativeTensorRef, lmHead: NativeTensorRef): Promise<NativeTokenLogprobs>;
  /**
   * One pass over vocabulary chunks of both lm_heads: KL(reference || this) per row, streamed.
   * ERR_SHAPE: residual length or a head/norm shape differs (another vocabulary); ERR_UNSUPPORTED on CUDA.
   */
  divergence(reference: NativeReferenceHead, finalNorm: NativeTensorRef, lmHead: NativeTensorRef): Promise<NativeDivergence>;
  lastTokenStates(): NativeLastTokenStates;
  /** A copy of the residual stream [totalTokens, hiddenSize] f32 (after embed or the last layer run). */
  snapshot(): Float32Array;
  /** Puts a snapshot back: stands in for embed() plus the layers that produced it (ERR_SHAPE on a wrong length). */
  restore(residual: Float32Array): void;
  /**
   * --heal (issue 13): while on, every forwardLayer keeps its MLP output (down_proj's output,
   * before the residual add), [totalTokens, hiddenSize] f32, read by mlpOutput(); off frees it.
   * Backends without it (CUDA) throw ERR_UNSUPPORTED.
   */
  captureMlp(on: boolean): void;
  /** A copy of the last layer's MLP output (ERR_STATE unless captureMlp(true) and a layer ran since). */
  mlpOutput(): Float32Array;
  /**
   * Adds Mᵀ M to G and Mᵀ (h - hS + M) to B ([hiddenSize, hiddenSize] f64, row-major), h the
   * current residual stream, summed in double in token order (bit-identical for any thread count).
   */
  accumulateHealSums(mlpOutput: Float32Array, residualBefore: Float32Array, G: Float64Array, B: Float64Array): Promise<void>;
  /** Stops work in flight at its next batch boundary (ERR_ABORTED); sticky. */
  cancel(): void;
  /** Resolves once work in flight has finished; later calls reject with ERR_DISPOSED. */
  dispose(): Promise<void>;
}

// cuda: the optional CUDA backend (native/binding/cuda_binding.cc, native/cuda/). The addon
// links no CUDA library; libshortgpt_cuda.so beside it is dlopened on first use.

export interface NativeCudaDevice {
  ordinal: number;
  name: string;
  /** "major.minor", e.g. "9.0" for an H100/H200. */
  computeCapability: string;
  multiprocessors: number;
  totalBytes: number;
  /** Not reported by cudaInfo(): asking creates a CUDA context on every device it asks. */
  freeBytes?: number;
}

/**
 * CUDA options of a Session (read by native/binding/cuda_binding.cc parseCudaSessionOptions, for
 * Session options `{device: 'cuda', cuda: ...}` once the Session binding routes them there).
 */
export interface NativeCudaSessionOptions {
  /** CUDA device ordinal (default 0). */
  device?: number;
  /** F32 checkpoints: 'tf32' tensor cores (default), 'bf16' weights, or 'f32' exact (no TF32). */
  f32Gemm?: 'tf32' | 'bf16' | 'f32';
  /** Tokens per activation chunk (whole sequences; default 16384): lower it on ERR_CUDA_OOM. */
  batchTokens?: number;
  /** Device bytes that may keep layers resident between calls (default 0: stream, 2 layers). */
  weightCacheBytes?: number;
}

export interface NativeCudaInfo {
  /** libshortgpt_cuda.so was found beside the addon (or at SHORTGPT_CUDA_LIB) and exports the ABI table. */
  compiled: boolean;
  /** A device of compute capability >= 8.0 and cuBLAS are usable. */
  usable: boolean;
  /** Why not usable ("" when usable): no shared object, no driver, no device, no cuBLAS (every file tried). */
  reason: string;
  /** The shared object's path (tried or loaded). */
  library: string;
  /** e.g. "cuda runtime 13.0, archs 80-real,90-real,90-virtual" (when compiled). */
  build?: string;
  driverVersion?: number;
  runtimeVersion?: number;
  /** The cuBLAS file that loaded. */
  cublas?: string;
  devices?: NativeCudaDevice[];
}

export interface NativeBinding {
  buildInfo(): NativeBuildInfo;
  cpuInfo(): NativeCpuInfo;

  // kernels: tests and benchmarks (synchronous, on the calling thread; not for the scoring path)
  /**
   * Y[m, n] = X[m, k] * W^T with W [n, k] given as raw little-endian bytes of `dtype`, packed and
   * multiplied by the engine's GEMM on `threads` threads; `portable` forces the portable
   * micro-kernel, otherwise the engine's choice runs (AVX-512 where the CPU has it, else AVX2/FMA;
   * environment SHORTGPT_NO_AVX512=1 / SHORTGPT_NO_AVX2=1, read per call, step down). With `y0`
   * the product is added to a copy of y0 (the GEMM's accumulate mode). Throws TypeError/RangeError naming a bad argument
   * (wrong type, non-integer, too-short buffer).
   */
  gemmForTest(
    x: Float32Array, m: number, w: Uint8Array, dtype: 'F32' | 'F16' | 'BF16',
    n: number, k: number, threads: number, portable?: boolean, y0?: Float32Array,
  ): Float32Array;
  /**
   * The fast-mode GEMM: X and W rounded to bf16 (nearest even), products summed in f32, by the
   * given kernel ('auto': AMX where available, else AVX512-BF16). A kernel this machine lacks
   * throws with code ERR_PRECISION_UNAVAILABLE. Otherwise as gemmForTest.
   */
  gemmBf16ForTest(
    x: Float32Array, m: number, w: Uint8Array, dtype: 'F32' | 'F16' | 'BF16',
    n: number, k: number, threads: number, kernel: 'auto' | 'amx-bf16' | 'avx512-bf16', y0?: Float32Array,
  ): Float32Array;
  /**
   * As gemmForTest with W read where it lies, packed slice by slice as the tiles need it (exact
   * mode's path for checkpoint weights met by one batch), W's rows split into stacked parts of
   * `partRows` rows (default: one part). `finite` is false when a weight value read was NaN or Inf.
   */
  gemmStreamedForTest(
    x: Float32Array, m: number, w: Uint8Array, dtype: 'F32' | 'F16' | 'BF16',
    n: number, k: number, threads: number, portable?: boolean, y0?: Float32Array, partRows?: number[],
  ): { y: Float32Array; finite: boolean };
  /**
   * As gemmBf16ForTest with W read where it lies, packed slice by slice as the tiles need it (fast
   * mode's path for checkpoint weights), W's rows split into stacked parts of `partRows` rows
   * (default: one part). `finite` is false when a weight value read was NaN or Inf.
   */
  /**
   * Causal attention over sequences laid end to end (cpu/attention.h): q [rows, numHeads * headDim],
   * k and v [rows, numKvHeads * headDim]; returns the output like q. 'f32': the exact kernels;
   * 'bf16': fast mode's (AMX tiles where the BF16 GEMMs run on AMX, else the exact kernels).
   * Rows before queryFrom[s] of sequence s need not be written (shared prefixes).
   */
  attentionForTest(
    q: Float32Array, k: Float32Array, v: Float32Array, seqLengths: number[], numHeads: number, numKvHeads: number,
    headDim: number, window: number, softcap: number, threads: number, precision: 'f32' | 'bf16', queryFrom?: number[],
  ): Float32Array;
  gemmBf16StreamedForTest(
    x: Float32Array, m: number, w: Uint8Array, dtype: 'F32' | 'F16' | 'BF16',
    n: number, k: number, threads: number, kernel: 'auto' | 'amx-bf16' | 'avx512-bf16', y0?: Float32Array,
    partRows?: number[],
  ): { y: Float32Array; finite: boolean };
  /**
   * Runs the ThreadPool's parallelFor over [0, n) `rounds` times: `visits[i]` counts visits of
   * index i, `chunks` the last round's [begin, end, worker]. Chunk `throwInChunk` (-1: none)
   * throws, `nested` runs a parallelFor inside every chunk.
   */
  threadPoolForTest(n: number, threads: number, rounds: number, throwInChunk: number, nested: boolean): {
    chunks: Array<[number, number, number]>; visits: Int32Array;
  };
  /**
   * Maps bytes [offset, offset + bytes) of `file` as the engine does, truncates the file to
   * `truncateTo` bytes, reads every mapped byte (`sum`) and reports whether the mapping saw the
   * file shrink, with the ERR_IO the engine would throw (code, message). A read past the new end
   * must not end the process (SIGBUS).
   */
  mappedTensorShrinkForTest(file: string, offset: number, bytes: number, truncateTo: number): {
    shrank: boolean; sum: number; code?: string; message?: string;
  };
  /** The engine's dtype conversion of raw little-endian bytes to f32. */
  convertToF32ForTest(bytes: Uint8Array, dtype: 'F32' | 'F16' | 'BF16'): Float32Array;
  /**
   * Times the GEMM on synthetic F32 data: `seconds` is the mean of `iterations` runs (after one
   * warm-up), `gflops` = 2mnk / seconds / 1e9, `bestSeconds` the fastest run, `packSeconds` the
   * one-off packing of W (excluded), `kernel` the micro-kernel that ran. `precision` 'bf16' times
   * the fast-mode GEMM instead (ERR_PRECISION_UNAVAILABLE without a BF16 kernel).
   */
  benchGemm(m: number, n: number, k: number, threads: number, iterations: number, precision?: 'f32' | 'bf16'): {
    seconds: number; gflops: number; bestSeconds: number; packSeconds: number;
    kernel: 'avx512' | 'avx2-fma' | 'portable' | 'amx-bf16' | 'avx512-bf16';
  };
  /**
   * This machine's single-precision FMA peak in GFLOP/s, measured on `threads` threads (~0.2 s),
   * at the vector width of the GEMM kernel that runs (AVX-512, AVX2 or scalar).
   */
  measureFmaPeak(threads: number): number;

  // session
  Session: new (options: NativeSessionOptions) => NativeSession;

  // cuda
  /**
   * Loads the CUDA backend and probes the driver, devices and cuBLAS. Probing a broken driver
   * can crash the process: lib/engine/device.ts runs it in a child process first.
   */
  cudaInfo(): NativeCudaInfo;

  // heal: --heal's solve and fold, in double (native/cpu/gram.h), synchronous

  /**
   * Solves (A + ridge I) X = B by Cholesky; A [n*n] is unchanged, B [n*m] becomes X. Returns -1,
   * or the index of the first non-positive pivot (A + ridge I not positive definite; B unchanged).
   */
  healSolve(A: Float64Array, ridge: number, B: Float64Array, n: number, m: number, threads: number): number;
  /** Aᵀ W for A [k*n] and W [k*m]: a new [n*m] array. */
  healFold(A: Float64Array, W: Float64Array, k: number, n: number, m: number, threads: number): Float64Array;

  // io: the rewrite's byte copies

  /**
   * Copies `length` bytes from `srcFd` at `srcOffset` to `dstFd` at `dstOffset` inside the kernel
   * (Linux copy_file_range), off the JavaScript thread. Rejects with an Error whose `code` is the
   * errno name: ENOSYS, EXDEV, EINVAL or EOPNOTSUPP when the files don't allow it (fall back to
   * read/write), ENODATA when the source ends early.
   */
  copyFileRange(srcFd: number, srcOffset: number, dstFd: number, dstOffset: number, length: number): Promise<void>;
}
