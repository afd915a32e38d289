/**
 * Where and how the engine computes: the options every Session-creating call takes (scoring,
 * perplexity, the prune passes), in one type so that a new one (a device ordinal, a GEMM mode)
 * is added here and in `engineOptionsOf`, not threaded through each function by hand.
 */
import type { NativeCudaSessionOptions } from '../../binding';
import { ShortGptError } from '../errors';

/** Where and how the engine computes: threads, backend, CUDA settings; all optional. */
export interface EngineOptions {
  /** Worker threads on the CPU backend; defaults to the machine's hardware threads. */
  threads?: number;
  /**
   * The backend: 'cpu' (default) or 'cuda'. 'auto' is not a backend: resolve it once with
   * resolveDevice (lib/engine/device.ts), which also says why it chose what it chose.
   */
  device?: 'cpu' | 'cuda';
  /** CUDA backend options (device ordinal, F32 GEMM mode, batch tokens, weight cache). */
  cuda?: NativeCudaSessionOptions;
  /**
   * The CPU backend's GEMM precision: 'f32' (default, exact mode, bit-identical across thread
   * counts and equal to the golden values) or 'bf16' (fast mode: the layers' matrix products
   * take bf16-rounded inputs with f32 accumulation on AMX or AVX512-BF16, and on AMX so do
   * attention's two products; residual stream, norms, softmax and statistics stay f32). 'bf16'
   * where neither kernel exists is an error
   * (ERR_PRECISION_UNAVAILABLE), never a silent fallback; on CUDA use cuda.f32Gemm instead.
   */
  precision?: 'f32' | 'bf16';
}

/**
 * Just the engine's fields of a larger options object (ScoreOptions, PruneOptions, ...), so
 * callers can pass them on without also passing callbacks or unrelated settings.
 */
export function engineOptionsOf(options: EngineOptions): EngineOptions {
  const out: EngineOptions = {};
  if (options.threads !== undefined) out.threads = options.threads;
  if (options.device !== undefined) out.device = options.device;
  if (options.cuda !== undefined) out.cuda = options.cuda;
  if (options.precision !== undefined) out.precision = options.precision;
  return out;
}

/**
 * Rejects what the native Session would reject, but before any data is read: a device other
 * than 'cpu'/'cuda' (including 'auto', which must be resolved first) or a bad thread count.
 */
export function checkEngineOptions(options: EngineOptions): void {
  const { device, threads, precision } = options;
  if (precision !== undefined && precision !== 'f32' && precision !== 'bf16') {
    throw new ShortGptError('ERR_INVALID_ARG', `precision must be 'f32' or 'bf16', got '${String(precision)}'`);
  }
  if (precision === 'bf16' && device === 'cuda') {
    throw new ShortGptError('ERR_INVALID_ARG', "precision 'bf16' is the CPU backend's fast mode; on CUDA choose the GEMM with cuda.f32Gemm");
  }
  if (device !== undefined && device !== 'cpu' && device !== 'cuda') {
    throw new ShortGptError('ERR_INVALID_ARG', `device must be 'cpu' or 'cuda', got '${String(device)}' (resolve 'auto' with resolveDevice first)`);
  }
  if (threads !== undefined && (!Number.isSafeInteger(threads) || threads < 1)) {
    throw new ShortGptError('ERR_INVALID_ARG', `threads must be a positive integer, got ${String(threads)}`);
  }
}
