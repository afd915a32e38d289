/**
 * Exact mode's GEMM on weights read where they lie (native/cpu/gemm_streamed.cc): each tile packs
 * the K slice of its panels as it needs it, instead of the whole weight being packed first. Its
 * contract is to equal the packed GEMM (gemm.cc) bit for bit, which gemm.test.ts checks against
 * a float64 product; so every case here compares the two outputs' bits, over every edge of the
 * streamed driver: 6-row micro-tiles and ~510-row tiles (m up to 1100), 16-column panels and
 * panel pairs past n, 256-wide K slices and their tail, stacked parts whose row counts cut
 * through panels (staged through scratch) or not (transposed straight from the rows), weights
 * at unaligned addresses, accumulate mode, thread counts, the AVX and portable kernels; then the
 * NaN/Inf flag in every dtype.
 */
import { loadBinding } from '../../lib/engine/binding';
import { type ComputeDType, randomMatrix, randomX, sameBits, shifted, STREAMED_SHAPES as shapes } from './half';

const binding = loadBinding();

const dtypes: ComputeDType[] = ['F32', 'F16', 'BF16'];

describe('streamed f32 gemm', () => {
  test.each(shapes)('m=%i n=%i k=%i equals the packed GEMM bit for bit, every weight dtype, both kernels', (m, n, k) => {
    for (const dtype of dtypes) {
      const w = randomMatrix(n, k, dtype, 3000 + m + n + k);
      const x = randomX(m, k, 5 * m + k);
      for (const portable of [false, true]) {
        const packed = binding.gemmForTest(x, m, w.bytes, dtype, n, k, 2, portable);
        const streamed = binding.gemmStreamedForTest(x, m, w.bytes, dtype, n, k, 2, portable);
        expect(streamed.finite).toBe(true);
        expect(sameBits(streamed.y, packed)).toBe(true);
      }
    }
  });

  test('stacked parts, whole panels (straight from the rows) and parts cutting panels (scratch)', () => {
    const [m, n, k] = [70, 5 + 40 + 3 + 33, 300];
    for (const dtype of dtypes) {
      const w = randomMatrix(n, k, dtype, 21);
      const x = randomX(m, k, 22);
      const packed = binding.gemmForTest(x, m, w.bytes, dtype, n, k, 2);
      for (const parts of [[5, 40, 3, 33], [32, 16, 33], [81]]) {
        const streamed = binding.gemmStreamedForTest(x, m, w.bytes, dtype, n, k, 2, false, undefined, parts);
        expect(sameBits(streamed.y, packed)).toBe(true);
      }
    }
  });

  test('weights at unaligned addresses', () => {
    const [m, n, k] = [40, 50, 70];
    for (const dtype of dtypes) {
      const w = randomMatrix(n, k, dtype, 23);
      const x = randomX(m, k, 24);
      const packed = binding.gemmForTest(x, m, w.bytes, dtype, n, k, 1);
      for (const shift of [1, 2, 3]) {
        expect(sameBits(binding.gemmStreamedForTest(x, m, shifted(w.bytes, shift), dtype, n, k, 1).y, packed)).toBe(true);
      }
    }
  });

  test('accumulate mode and any thread count give the packed result', () => {
    const [m, n, k] = [150, 300, 520];
    const w = randomMatrix(n, k, 'F32', 25);
    const x = randomX(m, k, 26);
    const y0 = randomX(m, n, 27);
    const packed = binding.gemmForTest(x, m, w.bytes, 'F32', n, k, 1, false, y0);
    for (const threads of [1, 2, 3, 5]) {
      expect(sameBits(binding.gemmStreamedForTest(x, m, w.bytes, 'F32', n, k, threads, false, y0).y, packed)).toBe(true);
    }
  });

  test('a NaN or Inf weight in any dtype clears `finite`, wherever it is', () => {
    const [m, n, k] = [33, 40, 300];
    const x = randomX(m, k, 28);
    const plant = (dtype: ComputeDType, element: number, value: number): Uint8Array => {
      const w = randomMatrix(n, k, dtype, 29).bytes.slice();
      const view = new DataView(w.buffer);
      if (dtype === 'F32') view.setFloat32(element * 4, value, true);
      else if (dtype === 'BF16') view.setUint16(element * 2, Number.isNaN(value) ? 0x7fc0 : 0xff80, true);
      else view.setUint16(element * 2, Number.isNaN(value) ? 0x7e00 : 0xfc00, true);
      return w;
    };
    for (const element of [0, 17 * k + 260, n * k - 1]) {
      for (const dtype of dtypes) {
        for (const value of [NaN, -Infinity]) {
          expect(binding.gemmStreamedForTest(x, m, plant(dtype, element, value), dtype, n, k, 2).finite).toBe(false);
          expect(binding.gemmStreamedForTest(x, m, plant(dtype, element, value), dtype, n, k, 2, false, undefined, [17, 23]).finite).toBe(false);
        }
      }
    }
  });
});
