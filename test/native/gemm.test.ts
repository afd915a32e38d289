/**
 * The engine's GEMM (native/cpu/gemm.cc), Y = X * W^T with W in Hugging Face [out, in] layout,
 * against a float64 product computed here from the exact values the weight bytes hold. Shapes
 * are chosen to cross every blocking boundary of the driver (6-row micro-tiles, 16-column panels
 * and panel pairs, row tiles, 256-deep K slices) and to be multiples of none.
 */
import { loadBinding } from '../../lib/engine/binding';
import { type ComputeDType, randomMatrix, randomX, thrown, thrownCode, worstError } from './half';
import { expectedKernel, type KernelCall, type KernelEnv, runKernelBatch } from './helpers/kernelBatch';

const binding = loadBinding();

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
 * [name, portable micro-kernel flag, environment]: the engine's choice here (AVX-512 where
 * present), AVX2 forced, and the portable kernel with SHORTGPT_NO_AVX2=1 so that packing takes its
 * portable path too. The addon reads these variables with getenv on every call, which jest's copy
 * of process.env never reaches, so the forced variants run in a child process that has them
 * (runKernelBatch; `undefined` runs in this process). Each variant runs all its calls in one batch.
 */
type Variant = [string, boolean, KernelEnv | undefined];
const defaultKernel: Variant = ['default (avx512 or avx2-fma)', false, undefined];
const avx2Kernel: Variant = ['avx2-fma', false, { SHORTGPT_NO_AVX512: '1' }];
const kernels: Variant[] = [defaultKernel, avx2Kernel, ['portable', true, { SHORTGPT_NO_AVX2: '1' }]];

/** The inputs every variant multiplies, made once (the parent checks what the children return). */
interface GemmCase { m: number; n: number; k: number; dtype: ComputeDType; x: Float32Array; w: { bytes: Uint8Array; values: Float64Array }; y0?: Float32Array }
const productCases = new Map<string, GemmCase>();
for (const dtype of dtypes) {
  for (const [m, n, k] of shapes) {
    productCases.set(`${dtype} ${m} ${n} ${k}`, { m, n, k, dtype, x: randomX(m, k, m * 1000 + k), w: randomMatrix(n, k, dtype, n * 7 + k) });
  }
}
const accumulateCase: GemmCase = (() => {
  const [m, n, k] = [11, 20, 300];
  return { m, n, k, dtype: 'F32', x: randomX(m, k, 5), w: randomMatrix(n, k, 'F32', 6), y0: randomX(m, n, 7).map((v) => v * 10) };
})();
const threadShapes: Array<[number, number, number]> = [
  [1, 1000, 300],
  [200, 300, 300],
  [97, 65, 257],
];
const threadCounts = [1, 2, 3, 7];
const threadCases = threadShapes.map(([m, n, k]): GemmCase => ({ m, n, k, dtype: 'BF16', x: randomX(m, k, 11), w: randomMatrix(n, k, 'BF16', 12) }));
/** For the AVX-512 vs AVX2 comparison: F16 weights, edge tiles and accumulation. */
const agreeCases = ([[97, 65, 257], [1, 100, 600], [13, 33, 300]] as const).map(([m, n, k]): GemmCase => (
  { m, n, k, dtype: 'F16', x: randomX(m, k, 21), w: randomMatrix(n, k, 'F16', 22), y0: randomX(m, n, 23) }
));

interface VariantResults {
  kernel: string;
  products: Map<string, Float32Array>;
  accumulated: Float32Array;
  zeros: [Float32Array, Float32Array];
  byThreads: Float32Array[][];
  agree: Float32Array[];
}

const resultsCache = new Map<string, VariantResults>();
/** Every call of one variant, run in one batch the first time it is asked for. */
function variantResults([name, portable, env]: Variant): VariantResults {
  const cached = resultsCache.get(name);
  if (cached) return cached;
  const calls: KernelCall[] = [];
  const add = (c: GemmCase, threads: number): number => calls.push({
    fn: 'gemmForTest', args: [c.x, c.m, c.w.bytes, c.dtype, c.n, c.k, threads, portable, ...(c.y0 ? [c.y0] : [])],
  }) - 1;
  const products = [...productCases].map(([key, c]) => [key, add(c, 2)] as const);
  const accumulated = add(accumulateCase, 2);
  const zeros = [
    add({ m: 3, n: 2, k: 0, dtype: 'F32', x: new Float32Array(0), w: { bytes: new Uint8Array(0), values: new Float64Array(0) } }, 1),
    add({ m: 0, n: 2, k: 5, dtype: 'F32', x: new Float32Array(0), w: { bytes: new Uint8Array(40), values: new Float64Array(10) } }, 1),
  ];
  const byThreads = threadCases.map((c) => threadCounts.map((t) => add(c, t)));
  const agree = agreeCases.map((c) => add(c, 2));
  const batch = runKernelBatch(env, calls);
  const pick = (i: number): Float32Array => batch.results[i]!;
  const results: VariantResults = {
    kernel: batch.kernel,
    products: new Map(products.map(([key, i]) => [key, pick(i)])),
    accumulated: pick(accumulated),
    zeros: [pick(zeros[0]!), pick(zeros[1]!)],
    byThreads: byThreads.map((row) => row.map(pick)),
    agree: agree.map(pick),
  };
  resultsCache.set(name, results);
  return results;
}

const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe.each(kernels)('gemm, %s kernel', (...variant) => {
  const env = variant[2];
  let r: VariantResults;
  beforeAll(() => {
    r = variantResults(variant);
  });

  it('runs the kernel its environment selects (cpuInfo().kernel in that process)', () => {
    expect(r.kernel).toBe(expectedKernel(env));
  });

  describe.each(dtypes)('%s weights', (dtype) => {
    it.each(shapes)('matches a float64 product at m=%i n=%i k=%i', (m, n, k) => {
      const c = productCases.get(`${dtype} ${m} ${n} ${k}`)!;
      const y = r.products.get(`${dtype} ${m} ${n} ${k}`)!;
      expect(y.length).toBe(m * n);
      expect(worstError(c.x, c.w.values, y, m, n, k)).toBeLessThanOrEqual((k + 2) * 2 ** -24);
    });
  });

  it('accumulates into y0 when given one', () => {
    const { m, n, k, x, w, y0 } = accumulateCase;
    expect(worstError(x, w.values, r.accumulated, m, n, k, y0)).toBeLessThanOrEqual((k + 3) * 2 ** -24);
  });

  it('gives K = 0 as zeros and M = 0 as an empty result', () => {
    expect(Array.from(r.zeros[0])).toEqual([0, 0, 0, 0, 0, 0]);
    expect(r.zeros[1].length).toBe(0);
  });

  it.each(threadShapes.map((s, i) => [...s, i]))('is bit-identical with 1, 2, 3 and 7 threads at m=%i n=%i k=%i', (_m, _n, _k, i) => {
    const [one, ...others] = r.byThreads[i]!;
    for (const y of others) expect(sameBits(y!, one!)).toBe(true);
  });
});

describe('the AVX-512 and AVX2 kernels', () => {
  // This process runs the engine's own choice; the AVX2 side runs in a child with
  // SHORTGPT_NO_AVX512=1. Without AVX-512 here there is nothing to compare.
  const here = binding.cpuInfo().kernel;
  if (here !== 'avx512') {
    // eslint-disable-next-line no-console
    console.log(`gemm.test: SKIPPED the AVX-512 vs AVX2 bit-for-bit comparison: the kernel here is ${here}, not avx512`);
  }
  (here === 'avx512' ? it : it.skip)('agree bit for bit (the same FMAs per element), including edge tiles and accumulation', () => {
    const avx512 = variantResults(defaultKernel);
    const avx2 = variantResults(avx2Kernel);
    expect([avx512.kernel, avx2.kernel]).toEqual(['avx512', 'avx2-fma']);
    agreeCases.forEach((c, i) => {
      expect(avx512.agree[i]!.length).toBe(c.m * c.n);
      expect(sameBits(avx512.agree[i]!, avx2.agree[i]!)).toBe(true);
    });
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
