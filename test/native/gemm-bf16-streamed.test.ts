/**
 * Fast mode's GEMM on weights read where they lie (native/cpu/gemm_bf16_driver.cc): each tile
 * packs the K slice of its weight rows as it needs it, instead of the whole weight being packed
 * first. Its contract is to equal the packed GEMM (gemm_bf16.cc) bit for bit, which
 * gemm-bf16.test.ts checks against a float64 product; so here every case compares the two
 * outputs' bits, over every edge of the streamed driver: 32-token row blocks and 16-block row
 * tiles (m up to 1100), 16-row panels and 32-row panel pairs past n, 256-wide K slices and a K
 * tail that is not a multiple of 32, stacked parts whose row counts cut through panels, weights
 * at unaligned addresses, accumulate mode, and thread counts. Then the NaN/Inf flag: set for a
 * non-finite value in any dtype, not set by a huge f32 that merely rounds to a bf16 infinity.
 * A kernel the CPU lacks is skipped with a note on the console.
 */
import { loadBinding } from '../../lib/engine/binding';
import { type ComputeDType, randomMatrix, randomX, sameBits, shifted, STREAMED_SHAPES as shapes } from './half';

const binding = loadBinding();
const available = binding.cpuInfo().bf16Kernels;

const dtypes: ComputeDType[] = ['F32', 'F16', 'BF16'];

for (const kernel of ['amx-bf16', 'avx512-bf16'] as const) {
  const has = available.includes(kernel);
  if (!has) {
    // eslint-disable-next-line no-console
    console.log(`gemm-bf16-streamed.test: SKIPPED the ${kernel} kernel: this CPU/OS does not offer it (${binding.cpuInfo().bf16Unavailable || 'the other BF16 kernel is available'})`);
  }
  (has ? describe : describe.skip)(`streamed bf16 gemm, ${kernel} kernel`, () => {
    test.each(shapes)('m=%i n=%i k=%i equals the packed GEMM bit for bit, every weight dtype', (m, n, k) => {
      for (const dtype of dtypes) {
        const w = randomMatrix(n, k, dtype, 2000 + m + n + k);
        const x = randomX(m, k, 3 * m + k);
        const packed = binding.gemmBf16ForTest(x, m, w.bytes, dtype, n, k, 2, kernel);
        const streamed = binding.gemmBf16StreamedForTest(x, m, w.bytes, dtype, n, k, 2, kernel);
        expect(streamed.finite).toBe(true);
        expect(sameBits(streamed.y, packed)).toBe(true);
      }
    });

    test('stacked parts whose row counts cut through panels equal one packed weight', () => {
      const [m, n, k] = [70, 5 + 40 + 3 + 33, 300];
      for (const dtype of dtypes) {
        const w = randomMatrix(n, k, dtype, 11);
        const x = randomX(m, k, 12);
        const packed = binding.gemmBf16ForTest(x, m, w.bytes, dtype, n, k, 2, kernel);
        const streamed = binding.gemmBf16StreamedForTest(x, m, w.bytes, dtype, n, k, 2, kernel, undefined, [5, 40, 3, 33]);
        expect(sameBits(streamed.y, packed)).toBe(true);
      }
    });

    test('weights at unaligned addresses (safetensors offsets need not be aligned)', () => {
      const [m, n, k] = [40, 50, 70];
      for (const dtype of dtypes) {
        const w = randomMatrix(n, k, dtype, 13);
        const x = randomX(m, k, 14);
        const packed = binding.gemmBf16ForTest(x, m, w.bytes, dtype, n, k, 1, kernel);
        for (const shift of [1, 2, 3]) {
          const streamed = binding.gemmBf16StreamedForTest(x, m, shifted(w.bytes, shift), dtype, n, k, 1, kernel);
          expect(sameBits(streamed.y, packed)).toBe(true);
        }
      }
    });

    test('accumulate mode and any thread count give the packed result', () => {
      const [m, n, k] = [150, 300, 520];
      const w = randomMatrix(n, k, 'BF16', 15);
      const x = randomX(m, k, 16);
      const y0 = randomX(m, n, 17);
      const packed = binding.gemmBf16ForTest(x, m, w.bytes, 'BF16', n, k, 1, kernel, y0);
      for (const threads of [1, 2, 3, 5]) {
        expect(sameBits(binding.gemmBf16StreamedForTest(x, m, w.bytes, 'BF16', n, k, threads, kernel, y0).y, packed)).toBe(true);
      }
    });

    test('a NaN or Inf weight in any dtype clears `finite`; a huge f32 that rounds to a bf16 Inf does not', () => {
      const [m, n, k] = [33, 40, 70];
      const x = randomX(m, k, 18);
      const plant = (dtype: ComputeDType, element: number, bits: number | null, value: number): Uint8Array => {
        const w = randomMatrix(n, k, dtype, 19).bytes.slice();
        const view = new DataView(w.buffer);
        if (dtype === 'F32') view.setFloat32(element * 4, value, true);
        else view.setUint16(element * 2, bits as number, true);
        return w;
      };
      const last = n * k - 1; // the last row's K tail: a panel pair's lower half, past K's multiple of 32
      for (const element of [0, 37 * k + 5, last]) {
        expect(binding.gemmBf16StreamedForTest(x, m, plant('F32', element, null, NaN), 'F32', n, k, 2, kernel).finite).toBe(false);
        expect(binding.gemmBf16StreamedForTest(x, m, plant('F32', element, null, -Infinity), 'F32', n, k, 2, kernel).finite).toBe(false);
        expect(binding.gemmBf16StreamedForTest(x, m, plant('F16', element, 0x7c00, Infinity), 'F16', n, k, 2, kernel).finite).toBe(false);
        expect(binding.gemmBf16StreamedForTest(x, m, plant('BF16', element, 0x7fc0, NaN), 'BF16', n, k, 2, kernel).finite).toBe(false);
        expect(binding.gemmBf16StreamedForTest(x, m, plant('BF16', element, 0xff80, -Infinity), 'BF16', n, k, 2, kernel, undefined, [37, 3]).finite).toBe(false);
      }
      // 3.4e38 is finite in f32 and rounds to +Inf in bf16: packing does not call it non-finite either.
      const huge = plant('F32', 5, null, 3.4e38);
      const streamed = binding.gemmBf16StreamedForTest(x, m, huge, 'F32', n, k, 2, kernel);
      expect(streamed.finite).toBe(true);
      expect(sameBits(streamed.y, binding.gemmBf16ForTest(x, m, huge, 'F32', n, k, 2, kernel))).toBe(true);
    });
  });
}

describe('gemmBf16StreamedForTest arguments', () => {
  test('partRows must add up to n', () => {
    expect(() => binding.gemmBf16StreamedForTest(new Float32Array(4), 1, new Uint8Array(32), 'F32', 2, 4, 1, 'auto', undefined, [1, 2]))
      .toThrow(/partRows sum to 3, n = 2/);
  });
});
