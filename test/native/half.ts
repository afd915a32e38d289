/**
 * Independent reference decoders for the 16-bit float formats, written from the format
 * definitions (sign, exponent, mantissa) rather than from bit tricks, so they check the engine's
 * conversion instead of repeating it. Also a deterministic PRNG for test data.
 */
import { mulberry32 } from '../../lib/util/prng';

/** IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
export function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits. */
export function bf16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 7) & 0xff;
  const mant = h & 0x7f;
  if (exp === 0) return sign * mant * 2 ** -133;
  if (exp === 0xff) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 128) * 2 ** (exp - 127);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
/** f32 -> bf16 -> number, round to nearest even on the f32 bits, as the engine rounds to bf16. */
export function roundBf16(v: number): number {
  f32Scratch[0] = v;
  const u = u32Scratch[0];
  u32Scratch[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32Scratch[0];
}

/** Seeded uniform [0, 1) numbers for test matrices. */
export const rng = mulberry32;

export type ComputeDType = 'F32' | 'F16' | 'BF16';

/**
 * A random [rows, cols] matrix in `dtype`: its raw little-endian bytes and the exact values they
 * hold (as float64), values roughly uniform in [-1, 1).
 */
export function randomMatrix(rows: number, cols: number, dtype: ComputeDType, seed: number): { bytes: Uint8Array; values: Float64Array } {
  const next = rng(seed);
  const count = rows * cols;
  const values = new Float64Array(count);
  if (dtype === 'F32') {
    const f = new Float32Array(count);
    for (let i = 0; i < count; i++) f[i] = next() * 2 - 1;
    values.set(f);
    return { bytes: new Uint8Array(f.buffer), values };
  }
  const h = new Uint16Array(count);
  const decode = dtype === 'F16' ? f16Value : bf16Value;
  for (let i = 0; i < count; i++) {
    // Random sign, an exponent giving magnitudes in [1/16, 1), random mantissa.
    const sign = next() < 0.5 ? 0x8000 : 0;
    if (dtype === 'F16') h[i] = sign | ((11 + Math.floor(next() * 4)) << 10) | Math.floor(next() * 1024);
    else h[i] = sign | ((123 + Math.floor(next() * 4)) << 7) | Math.floor(next() * 128);
    values[i] = decode(h[i]);
  }
  return { bytes: new Uint8Array(h.buffer), values };
}

/**
 * Runs `fn` and returns what it threw as `name: message`. Errors made by the addon come from
 * Node's main realm, not jest's sandbox, so `toThrow(TypeError)` cannot match them by class.
 */
export function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    const err = e as Error;
    return `${err.name}: ${err.message}`;
  }
  return 'nothing thrown';
}

/** The `code` of what `fn` threw (undefined when none, or nothing thrown). */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

/** An m x k activation matrix of uniform values in [-1, 1), seeded. */
export function randomX(m: number, k: number, seed: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(m * k);
  for (let i = 0; i < x.length; i++) x[i] = next() * 2 - 1;
  return x;
}

/**
 * Max over elements of |y - exact| / (sum_k |x||w|), and the same bound's limit: a recursive f32
 * sum of k products has error at most about (k + 1) * 2^-24 * sum |x||w| (Higham, gamma_{k+1}).
 */
export function worstError(x: Float32Array, w: Float64Array, y: Float32Array, m: number, n: number, k: number, y0?: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let exact = y0 ? y0[i * n + j] : 0;
      let scale = y0 ? Math.abs(y0[i * n + j]) : 0;
      for (let kk = 0; kk < k; kk++) {
        exact += x[i * k + kk] * w[j * k + kk];
        scale += Math.abs(x[i * k + kk] * w[j * k + kk]);
      }
      const err = Math.abs(y[i * n + j] - exact);
      worst = Math.max(worst, scale === 0 ? err : err / scale);
    }
  }
  return worst;
}

/** Whether two Float32Arrays hold the same bits (NaN payloads and signed zeros included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** `bytes` copied to an address `shift` bytes past a fresh buffer's start (unaligned for odd shifts). */
export function shifted(bytes: Uint8Array, shift: number): Uint8Array {
  const out = new Uint8Array(bytes.length + shift).subarray(shift);
  out.set(bytes);
  return out;
}

/**
 * [m, n, k] for the streamed GEMM tests: single rows and elements, panel and row-block edges,
 * K slices of 256 and their tails, and m past a streamed row tile (258 f32 rows, 512 bf16 rows).
 */
export const STREAMED_SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 37],
  [5, 17, 31],
  [33, 47, 65],
  [64, 64, 64],
  [70, 100, 33],
  [9, 290, 257],
  [45, 33, 1000],
  [600, 96, 300],
  [1100, 70, 40],
];
