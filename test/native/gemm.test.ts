/**
 * The engine's GEMM (native/cpu/gemm.cc), Y = X * W^T with W in Hugging Face [out, in] layout,
 * against a float64 product computed here from the exact values the weight bytes hold. Shapes
 * are chosen to cross every blocking boundary of the driver (6-row micro-tiles, 16-column panels
 * and panel pairs, row tiles, 256-deep K slices) and to be multiples of none.
 */
import { loadBinding } from '../../lib/engine/binding';
import { type ComputeDType, randomMatrix, rng, thrown, thrownCode } from './half';

const binding = loadBinding();

function randomX(m: number, k: number, seed: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(m * k);
  for (let i = 0; i < x.length; i++) x[i] = next() * 2 - 1;
  return x;
}

/**
 * Max over elements of |y - exact| / (sum_k |x||w|), and the same bound's limit: a recursive f32
 * sum of k products has error at most about (k + 1) * 2^-24 * sum |x||w| (Higham, gamma_{k+1}).
 */
function worstError(x: Float32Array, w: Float64Array, y: Float32Array, m: number, n: number, k: number, y0?: Float32Array): number {
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

const shapes: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 37],
  [7, 37, 1],
  [1, 100, 600],
  [13, 33, 300],
  [37, 17, 1000],
  [97, 65, 257],
  [6, 16, 256],
];
const dtypes: ComputeDType[] = ['F32', 'F16', 'BF16'];
/**
 * [name, portable flag, environment]: the engine's choice (AVX-512 where present), AVX2 forced,
 * and the portable kernel with SHORTGPT_NO_AVX2=1 so that packing takes its portable path too.
 * The addon reads these variables on every call.
 */
type Env = Record<'SHORTGPT_NO_AVX512' | 'SHORTGPT_NO_AVX2', string | undefined>;
const kernels: Array<[string, boolean, Env]> = [
  ['default (avx512 or avx2-fma)', false, { SHORTGPT_NO_AVX512: undefined, SHORTGPT_NO_AVX2: undefined }],
  ['avx2-fma', false, { SHORTGPT_NO_AVX512: '1', SHORTGPT_NO_AVX2: undefined }],
  ['portable', true, { SHORTGPT_NO_AVX512: undefined, SHORTGPT_NO_AVX2: '1' }],
];

/** Runs the enclosing describe with the given environment, restored afterwards. */
function withEnv(env: Env): void {
  const saved: Env = { SHORTGPT_NO_AVX512: process.env.SHORTGPT_NO_AVX512, SHORTGPT_NO_AVX2: process.env.SHORTGPT_NO_AVX2 };
  const apply = (e: Env) => {
    for (const [key, value] of Object.entries(e)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  beforeAll(() => apply(env));
  afterAll(() => apply(saved));
}

describe.each(kernels)('gemm, %s kernel', (_kernel, portable, env) => {
  withEnv(env);
  describe.each(dtypes)('%s weights', (dtype) => {
    it.each(shapes)('matches a float64 product at m=%i n=%i k=%i', (m, n, k) => {
      const x = randomX(m, k, m * 1000 + k);
      const w = randomMatrix(n, k, dtype, n * 7 + k);
      const y = binding.gemmForTest(x, m, w.bytes, dtype, n, k, 2, portable);
      expect(y.length).toBe(m * n);
      expect(worstError(x, w.values, y, m, n, k)).toBeLessThanOrEqual((k + 2) * 2 ** -24);
    });
  });

  it('accumulates into y0 when given one', () => {
    const [m, n, k] = [11, 20, 300];
    const x = randomX(m, k, 5);
    const w = randomMatrix(n, k, 'F32', 6);
    const y0 = randomX(m, n, 7).map((v) => v * 10);
    const y = binding.gemmForTest(x, m, w.bytes, 'F32', n, k, 2, portable, y0);
    expect(worstError(x, w.values, y, m, n, k, y0)).toBeLessThanOrEqual((k + 3) * 2 ** -24);
  });

  it('gives K = 0 as zeros and M = 0 as an empty result', () => {
    expect(Array.from(binding.gemmForTest(new Float32Array(0), 3, new Uint8Array(0), 'F32', 2, 0, 1, portable))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(binding.gemmForTest(new Float32Array(0), 0, new Uint8Array(40), 'F32', 2, 5, 1, portable).length).toBe(0);
  });

  it.each([
    [1, 1000, 300],
    [200, 300, 300],
    [97, 65, 257],
  ])('is bit-identical with 1, 2, 3 and 7 threads at m=%i n=%i k=%i', (m, n, k) => {
    const x = randomX(m, k, 11);
    const w = randomMatrix(n, k, 'BF16', 12);
    const one = binding.gemmForTest(x, m, w.bytes, 'BF16', n, k, 1, portable);
    for (const threads of [2, 3, 7]) {
      const y = binding.gemmForTest(x, m, w.bytes, 'BF16', n, k, threads, portable);
      expect(Buffer.from(y.buffer).equals(Buffer.from(one.buffer))).toBe(true);
    }
  });
});

describe('the AVX-512 and AVX2 kernels', () => {
  it('agree bit for bit (the same FMAs per element), including edge tiles and accumulation', () => {
    const saved = process.env.SHORTGPT_NO_AVX512;
    try {
      for (const [m, n, k] of [[97, 65, 257], [1, 100, 600], [13, 33, 300]]) {
        const x = randomX(m, k, 21);
        const w = randomMatrix(n, k, 'F16', 22);
        const y0 = randomX(m, n, 23);
        delete process.env.SHORTGPT_NO_AVX512;
        const auto = binding.gemmForTest(x, m, w.bytes, 'F16', n, k, 2, false, y0);
        process.env.SHORTGPT_NO_AVX512 = '1';
        const avx2 = binding.gemmForTest(x, m, w.bytes, 'F16', n, k, 2, false, y0);
        expect(Buffer.from(auto.buffer).equals(Buffer.from(avx2.buffer))).toBe(true);
      }
    } finally {
      if (saved === undefined) delete process.env.SHORTGPT_NO_AVX512;
      else process.env.SHORTGPT_NO_AVX512 = saved;
    }
  });
});

describe('gemmForTest argument checks', () => {
  const x = new Float32Array(6);
  const w = new Uint8Array(4 * 6);
  it.each([
    ['x of the wrong type', () => binding.gemmForTest(new Float64Array(6) as unknown as Float32Array, 2, w, 'F32', 2, 3, 1), /^TypeError: x must be a Float32Array/],
    ['w of the wrong type', () => binding.gemmForTest(x, 2, new Float32Array(6) as unknown as Uint8Array, 'F32', 2, 3, 1), /^TypeError: w must be a Uint8Array/],
    ['a too-short x', () => binding.gemmForTest(x, 3, w, 'F32', 2, 3, 1), /^RangeError: x has 6 elements, m\*k = 9 needed/],
    ['a too-short w', () => binding.gemmForTest(x, 2, w, 'F32', 3, 3, 1), /^RangeError: w has 24 bytes, n\*k\*4 = 36 needed for F32/],
    ['an unsupported dtype', () => binding.gemmForTest(x, 2, w, 'I8' as 'F32', 2, 3, 1), /^TypeError: dtype: unsupported dtype 'I8'/],
    ['a fractional m', () => binding.gemmForTest(x, 1.5, w, 'F32', 2, 3, 1), /^RangeError: m must be an integer/],
    ['a negative k', () => binding.gemmForTest(x, 2, w, 'F32', 2, -3, 1), /^RangeError: k must be in \[0, /],
    ['zero threads', () => binding.gemmForTest(x, 2, w, 'F32', 2, 3, 0), /^RangeError: threads must be in \[1, /],
    ['a missing argument', () => (binding.gemmForTest as unknown as (...a: unknown[]) => unknown)(x, 2, w, 'F32', 2, 3), /^TypeError: threads must be a number/],
    ['a non-boolean portable', () => binding.gemmForTest(x, 2, w, 'F32', 2, 3, 1, 1 as unknown as boolean), /^TypeError: portable must be a boolean/],
    ['a too-short y0', () => binding.gemmForTest(x, 2, w, 'F32', 2, 3, 1, false, new Float32Array(3)), /^RangeError: y0 has 3 elements, m\*n = 4 needed/],
  ])('rejects %s, naming the argument', (_what, call, message) => {
    expect(thrown(call)).toMatch(message);
    expect(thrownCode(call)).toBe('ERR_INVALID_ARG');
  });

  it('rejects bad benchGemm and measureFmaPeak arguments', () => {
    expect(thrown(() => binding.benchGemm(0, 8, 8, 1, 1))).toMatch(/^RangeError: m must be in \[1, /);
    expect(thrown(() => binding.measureFmaPeak('2' as unknown as number))).toBe('TypeError: threads must be a number');
  });
});

describe('benchGemm and measureFmaPeak', () => {
  it('report positive, finite rates for a small shape', () => {
    const r = binding.benchGemm(8, 32, 64, 1, 2);
    expect(r.seconds).toBeGreaterThan(0);
    expect(Number.isFinite(r.gflops) && r.gflops > 0).toBe(true);
    expect(r.packSeconds).toBeGreaterThanOrEqual(0);
    expect(r.bestSeconds).toBeGreaterThan(0);
    expect(r.bestSeconds).toBeLessThanOrEqual(r.seconds);
    expect(['avx512', 'avx2-fma', 'portable']).toContain(r.kernel);
    expect(binding.measureFmaPeak(1)).toBeGreaterThan(0);
  });
});
