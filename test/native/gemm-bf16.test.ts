/**
 * Fast mode's GEMM (native/cpu/gemm_bf16.cc): each BF16 micro-kernel this CPU has (AMX tiles,
 * AVX512-BF16) against a float64 product of the bf16-rounded inputs computed here. Rounding is
 * reimplemented in TypeScript (round to nearest even on the f32 bit pattern), so a kernel that
 * truncated, skipped the rounding of X, or dropped a K tail would miss the bound by orders of
 * magnitude. Shapes cross every edge of the driver: 32-row blocks, 16-column panels and panel
 * pairs, 256-column tiles, and K not a multiple of 32 (the zero-padded tail of a tile).
 * A kernel the CPU lacks is skipped with a note on the console.
 */
import { loadBinding } from '../../lib/engine/binding';
import { type ComputeDType, randomMatrix, randomX, roundBf16, thrownCode, worstError } from './half';

const binding = loadBinding();
const available = binding.cpuInfo().bf16Kernels;


/**
 * worstError against the float64 product of the bf16-rounded x and w. With f32 accumulation of
 * k products (two per VDPBF16PS step, each step rounded), the error is at most about
 * (k + 2) * 2^-24 * sum |x||w| (Higham, gamma_{k+2}).
 */
function worstBf16Error(x: Float32Array, w: Float64Array, y: Float32Array, m: number, n: number, k: number, y0?: Float32Array): number {
  return worstError(Float32Array.from(x, roundBf16), Float64Array.from(w, roundBf16), y, m, n, k, y0);
}

const shapes: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 37],
  [7, 37, 1],
  [5, 17, 31],
  [33, 47, 65],
  [31, 33, 96],
  [64, 64, 64],
  [70, 100, 33],
  [9, 290, 257],
  [45, 33, 1000],
];
const dtypes: ComputeDType[] = ['F32', 'F16', 'BF16'];

for (const kernel of ['amx-bf16', 'avx512-bf16'] as const) {
  const has = available.includes(kernel);
  if (!has) {
    // eslint-disable-next-line no-console
    console.log(`gemm-bf16.test: SKIPPED the ${kernel} kernel: this CPU/OS does not offer it (${binding.cpuInfo().bf16Unavailable || 'the other BF16 kernel is available'})`);
  }
  (has ? describe : describe.skip)(`bf16 gemm, ${kernel} kernel`, () => {
    test.each(shapes)('m=%i n=%i k=%i matches the bf16-rounded float64 product, every weight dtype', (m, n, k) => {
      for (const dtype of dtypes) {
        const w = randomMatrix(n, k, dtype, 1000 + m + n + k);
        const x = randomX(m, k, 7 * m + k);
        const y = binding.gemmBf16ForTest(x, m, w.bytes, dtype, n, k, 2, kernel);
        expect(y.length).toBe(m * n);
        expect(worstBf16Error(x, w.values, y, m, n, k)).toBeLessThanOrEqual((k + 2) * 2 ** -24);
      }
    });

    test('accumulate mode adds the product to y0', () => {
      const [m, n, k] = [37, 49, 70];
      const w = randomMatrix(n, k, 'BF16', 5);
      const x = randomX(m, k, 6);
      const y0 = randomX(m, n, 7);
      const y = binding.gemmBf16ForTest(x, m, w.bytes, 'BF16', n, k, 2, kernel, y0);
      expect(worstBf16Error(x, w.values, y, m, n, k, y0)).toBeLessThanOrEqual((k + 3) * 2 ** -24);
    });

    test('results are bit-identical for any thread count', () => {
      const [m, n, k] = [150, 300, 200];
      const w = randomMatrix(n, k, 'BF16', 8);
      const x = randomX(m, k, 9);
      const one = binding.gemmBf16ForTest(x, m, w.bytes, 'BF16', n, k, 1, kernel);
      for (const threads of [2, 3, 5]) {
        expect(Buffer.from(binding.gemmBf16ForTest(x, m, w.bytes, 'BF16', n, k, threads, kernel).buffer)
          .equals(Buffer.from(one.buffer))).toBe(true);
      }
    });

    test('rounding is to nearest even, not truncation (an exact case)', () => {
      // x = 1 + 2^-8 + 2^-9 rounds up to 1 + 2^-7; w = 1 exactly: y must be 1 + 2^-7.
      const x = new Float32Array([1 + 2 ** -8 + 2 ** -9]);
      const w = new Float32Array([1]);
      const y = binding.gemmBf16ForTest(x, 1, new Uint8Array(w.buffer), 'F32', 1, 1, 1, kernel);
      expect(y[0]).toBe(1 + 2 ** -7);
      // A tie (1 + 2^-8) rounds to even: 1.
      const tie = binding.gemmBf16ForTest(new Float32Array([1 + 2 ** -8]), 1, new Uint8Array(w.buffer), 'F32', 1, 1, 1, kernel);
      expect(tie[0]).toBe(1);
    });
  });
}

describe('gemmBf16ForTest arguments', () => {
  test('an unknown kernel name is a TypeError naming it', () => {
    expect(() => binding.gemmBf16ForTest(new Float32Array(1), 1, new Uint8Array(4), 'F32', 1, 1, 1, 'sse' as 'auto'))
      .toThrow(/kernel must be 'auto', 'amx-bf16' or 'avx512-bf16', got 'sse'/);
  });
  test('a kernel the CPU lacks is ERR_PRECISION_UNAVAILABLE, never a silent fallback', () => {
    for (const kernel of ['amx-bf16', 'avx512-bf16'] as const) {
      if (available.includes(kernel)) continue;
      expect(thrownCode(() => binding.gemmBf16ForTest(new Float32Array(1), 1, new Uint8Array(4), 'F32', 1, 1, 1, kernel)))
        .toBe('ERR_PRECISION_UNAVAILABLE');
    }
    if (available.length === 0) {
      expect(thrownCode(() => binding.gemmBf16ForTest(new Float32Array(1), 1, new Uint8Array(4), 'F32', 1, 1, 1, 'auto')))
        .toBe('ERR_PRECISION_UNAVAILABLE');
    }
  });
});
