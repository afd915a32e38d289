/**
 * The engine's F16/BF16 -> f32 conversion (native/core/dtype.cc), checked exhaustively against
 * decoders written from the format definitions (half.ts), on the AVX2/F16C path and on the
 * portable path (SHORTGPT_NO_AVX2=1 is read on every call).
 */
import { loadBinding } from '../../lib/engine/binding';
import { bf16Value, f16Value, thrown } from './half';

const binding = loadBinding();

function allPatterns(): Uint8Array {
  const h = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) h[i] = i;
  return new Uint8Array(h.buffer);
}

/** Indices where `out` differs from the reference (NaN must stay NaN; -0 must stay -0). */
function mismatches(out: Float32Array, decode: (h: number) => number, patterns: Uint16Array): number[] {
  const bad: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const want = decode(patterns[i]);
    const ok = Number.isNaN(want) ? Number.isNaN(out[i]) : Object.is(out[i], Math.fround(want)) && Math.fround(want) === want;
    if (!ok) bad.push(patterns[i]);
  }
  return bad;
}

describe.each([
  ['avx2/f16c path', undefined],
  ['portable path', '1'],
])('convertToF32 (%s)', (_name, noAvx2) => {
  const saved = process.env.SHORTGPT_NO_AVX2;
  beforeAll(() => {
    if (noAvx2 === undefined) delete process.env.SHORTGPT_NO_AVX2;
    else process.env.SHORTGPT_NO_AVX2 = noAvx2;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.SHORTGPT_NO_AVX2;
    else process.env.SHORTGPT_NO_AVX2 = saved;
  });

  const patterns = new Uint16Array(allPatterns().buffer);

  it('converts all 65536 F16 bit patterns exactly', () => {
    const out = binding.convertToF32ForTest(allPatterns(), 'F16');
    expect(out.length).toBe(65536);
    expect(mismatches(out, f16Value, patterns)).toEqual([]);
  });

  it('converts all 65536 BF16 bit patterns exactly', () => {
    const out = binding.convertToF32ForTest(allPatterns(), 'BF16');
    expect(mismatches(out, bf16Value, patterns)).toEqual([]);
  });

  it('reads misaligned input of a length that is not a multiple of the vector width', () => {
    const buf = new Uint8Array(1 + 2 * 13);
    const h = [0x3c00, 0xc000, 0x0001, 0x8400, 0x7c00, 0xfc00, 0x7bff, 0x03ff, 0x3555, 0x0000, 0x8000, 0x4248, 0x1234];
    h.forEach((v, i) => { buf[1 + 2 * i] = v & 0xff; buf[2 + 2 * i] = v >> 8; });
    const view = new Uint8Array(buf.buffer, 1, 26);
    const p = Uint16Array.from(h);
    expect(mismatches(binding.convertToF32ForTest(view, 'F16'), f16Value, p)).toEqual([]);
    expect(mismatches(binding.convertToF32ForTest(view, 'BF16'), bf16Value, p)).toEqual([]);
  });

  it('copies F32 unchanged', () => {
    const f = new Float32Array([1.5, -0, Infinity, 3.4e38, 1e-45, -2.25]);
    expect(Array.from(binding.convertToF32ForTest(new Uint8Array(f.buffer), 'F32'))).toEqual(Array.from(f));
  });
});

describe('convertToF32ForTest argument checks', () => {
  it('names an unsupported dtype', () => {
    expect(thrown(() => binding.convertToF32ForTest(new Uint8Array(8), 'F64' as 'F32'))).toMatch(
      /^TypeError: dtype: unsupported dtype 'F64'/,
    );
  });
  it('rejects a byte length that is not a whole number of elements', () => {
    expect(thrown(() => binding.convertToF32ForTest(new Uint8Array(3), 'F16'))).toMatch(/^RangeError: bytes has 3 bytes/);
    expect(thrown(() => binding.convertToF32ForTest(new Uint8Array(6), 'F32'))).toBe(
      'RangeError: bytes has 6 bytes, not a multiple of 4 for F32',
    );
  });
  it('rejects a non-Uint8Array', () => {
    expect(thrown(() => binding.convertToF32ForTest(new Uint16Array(4) as unknown as Uint8Array, 'F16'))).toBe(
      'TypeError: bytes must be a Uint8Array',
    );
  });
});
