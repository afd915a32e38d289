/**
 * The typed face of the native Session: AbortSignal -> cancel() (honoured between batches of
 * sequences), progress callbacks, and native errors turned into ShortGptErrors with the same
 * stable `code`. Everything above lib/engine uses this class, never the raw binding.
 */
import type {
  NativeDivergence, NativeLastTokenStates, NativeLayerStats, NativeModelSpec, NativeNllStats, NativeReferenceHead, NativeSession,
  NativeTensorRef, NativeTokenLogprobs,
} from '../../binding';
import { ShortGptError } from '../errors';
import { loadBinding } from './binding';
import type { EngineOptions } from './engineOptions';

/** Token id sequences (plain arrays or Int32Arrays); every id below the model's vocab size. */
export type TokenSequences = ReadonlyArray<ReadonlyArray<number> | Int32Array>;

export interface EngineSessionOptions extends EngineOptions {
  /** Keep each sequence's last-token hidden state after the embedding and every layer. */
  keepLastTokenStates?: boolean;
  /**
   * Per sequence (null/undefined: none), the earlier root sequence it shares its first `length`
   * tokens with: only its tokens from `length` on are computed (NativeSessionOptions.sharedPrefixes).
   */
  sharedPrefixes?: ReadonlyArray<SharedPrefix | null | undefined>;
}

/** Sequence s's first `length` tokens are those of the earlier sequence `parent` (a root). */
export interface SharedPrefix {
  parent: number;
  length: number;
}

export interface LayerProgress {
  layer: number;
  sequencesDone: number;
  sequencesTotal: number;
}

export interface RunOptions {
  signal?: AbortSignal;
}

export interface ForwardOptions extends RunOptions {
  onProgress?: (p: LayerProgress) => void;
  /**
   * The weights of the layer the caller runs next (undefined after the last one): the CUDA
   * backend reads and copies them while this layer computes instead of on the critical path.
   */
  next?: Record<string, NativeTensorRef>;
}

export function defaultThreads(): number {
  return Math.max(1, loadBinding().cpuInfo().hardwareThreads);
}

/** A native error (an Error with a string `code`) as a ShortGptError; anything else unchanged. */
function translate(e: unknown): unknown {
  if (e instanceof ShortGptError) return e;
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  if (e instanceof Error && typeof code === 'string') return new ShortGptError(code, e.message, { cause: e });
  return e;
}

/** Runs a synchronous native call, its errors translated. */
function translated<T>(op: () => T): T {
  try {
    return op();
  } catch (e) {
    throw translate(e);
  }
}

function toInt32(sequences: TokenSequences): Int32Array[] {
  return sequences.map((seq, s) => {
    if (seq instanceof Int32Array) return seq;
    const out = new Int32Array(seq.length);
    for (let i = 0; i < seq.length; i++) {
      const id = seq[i];
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
        throw new ShortGptError('ERR_TOKEN_RANGE', `sequence ${s}, position ${i}: token id ${String(id)} is not a non-negative integer`);
      }
      out[i] = id;
    }
    return out;
  });
}

function sharedPrefixArrays(links: ReadonlyArray<SharedPrefix | null | undefined>): { parents: number[]; lengths: number[] } {
  return { parents: links.map((l) => (l ? l.parent : -1)), lengths: links.map((l) => (l ? l.length : 0)) };
}

function abortedError(): ShortGptError {
  return new ShortGptError('ERR_ABORTED', 'the operation was aborted');
}

export class EngineSession {
  private constructor(private readonly native: NativeSession) {}

  static create(spec: NativeModelSpec, sequences: TokenSequences, options: EngineSessionOptions = {}): EngineSession {
    const threads = options.threads ?? defaultThreads();
    if (!Number.isSafeInteger(threads) || threads < 1) throw new ShortGptError('ERR_INVALID_ARG', `threads must be a positive integer, got ${threads}`);
    const { Session } = loadBinding();
    return translated(() => new EngineSession(new Session({
      spec, sequences: toInt32(sequences), threads, keepLastTokenStates: options.keepLastTokenStates ?? false,
      device: options.device ?? 'cpu', cuda: options.cuda,
      ...(options.precision !== undefined ? { precision: options.precision } : {}),
      ...(options.sharedPrefixes ? { sharedPrefixes: sharedPrefixArrays(options.sharedPrefixes) } : {}),
    })));
  }

  get totalTokens(): number {
    return this.native.totalTokens;
  }

  get sequenceCount(): number {
    return this.native.sequenceCount;
  }

  /** Runs one native operation with the signal wired to cancel(). */
  private async run<T>(signal: AbortSignal | undefined, op: () => Promise<T>): Promise<T> {
    if (signal?.aborted) {
      this.native.cancel();
      throw abortedError();
    }
    const onAbort = (): void => this.native.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await op();
    } catch (e) {
      throw translate(e);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  embed(table: NativeTensorRef, options: RunOptions = {}): Promise<void> {
    return this.run(options.signal, () => this.native.embed(table));
  }

  forwardLayer(layer: number, weights: Record<string, NativeTensorRef>, options: ForwardOptions = {}): Promise<NativeLayerStats> {
    const { onProgress } = options;
    const cb = onProgress
      ? (l: number, done: number, total: number): void => onProgress({ layer: l, sequencesDone: done, sequencesTotal: total })
      : undefined;
    return this.run(options.signal, () => this.native.forwardLayer(layer, weights, cb, options.next));
  }

  nll(finalNorm: NativeTensorRef, lmHead: NativeTensorRef, options: RunOptions = {}): Promise<NativeNllStats> {
    return this.run(options.signal, () => this.native.nll(finalNorm, lmHead));
  }

  /**
   * nll() keeping, per row of the residual stream, log p(next token) (NaN for each sequence's
   * last token), the argmax and whether the target is it. -sum(logprob) === sumNll exactly.
   */
  tokenLogprobs(finalNorm: NativeTensorRef, lmHead: NativeTensorRef, options: RunOptions = {}): Promise<NativeTokenLogprobs> {
    return this.run(options.signal, () => this.native.tokenLogprobs(finalNorm, lmHead));
  }

  /**
   * KL(reference || this) of the next-token distributions per row, with both models' logprobs and
   * argmaxes, in one streamed pass over both lm_heads. `reference.residual` is the reference
   * session's snapshot() over the same sequences; do not transfer its buffer while this runs.
   */
  divergence(reference: NativeReferenceHead, finalNorm: NativeTensorRef, lmHead: NativeTensorRef, options: RunOptions = {}): Promise<NativeDivergence> {
    return this.run(options.signal, () => this.native.divergence(reference, finalNorm, lmHead));
  }

  lastTokenStates(): NativeLastTokenStates {
    return translated(() => this.native.lastTokenStates());
  }

  /** A copy of the residual stream [totalTokens, hiddenSize] f32: after embed() or the last layer run. */
  snapshot(): Float32Array {
    return translated(() => this.native.snapshot());
  }

  /** Puts a snapshot of this session's sequences back, in place of embed() and the layers that made it. */
  restore(residual: Float32Array): void {
    translated(() => this.native.restore(residual));
  }

  /** --heal: keep (on) or stop keeping each later layer's MLP output [totalTokens, hiddenSize] f32. */
  captureMlp(on: boolean): void {
    translated(() => this.native.captureMlp(on));
  }

  /** A copy of the MLP output of the last layer run since captureMlp(true). */
  mlpOutput(): Float32Array {
    return translated(() => this.native.mlpOutput());
  }

  /** G += MᵀM, B += Mᵀ(h - residualBefore + M), h the current residual stream (double, token order). */
  accumulateHealSums(mlpOutput: Float32Array, residualBefore: Float32Array, G: Float64Array, B: Float64Array, options: RunOptions = {}): Promise<void> {
    return this.run(options.signal, () => this.native.accumulateHealSums(mlpOutput, residualBefore, G, B));
  }

  /** Stops work in flight at its next batch boundary; the session cannot be used afterwards. */
  cancel(): void {
    this.native.cancel();
  }

  /** Waits for work in flight, then frees the activations. */
  async dispose(): Promise<void> {
    await this.native.dispose();
  }
}
