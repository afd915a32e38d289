/**
 * The engine's F16/BF16 -> f32 conversion (native/core/dtype.cc), checked exhaustively against
 * decoders written from the format definitions (half.ts), on the AVX2/F16C path and on the
 * portable path (SHORTGPT_NO_AVX2=1, read on every call, set in a child process's real environment).
 */
import { loadBinding } from '../../lib/engine/binding';
import { bf16Value, f16Value, thrown } from './half';
import { expectedKernel, type KernelCall, type KernelEnv, runKernelBatch } from './helpers/kernelBatch';

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

/** The 13 F16/BF16 patterns of the misaligned-input case. */
const oddPatterns = [0x3c00, 0xc000, 0x0001, 0x8400, 0x7c00, 0xfc00, 0x7bff, 0x03ff, 0x3555, 0x0000, 0x8000, 0x4248, 0x1234];
/** Those patterns at byte offset 1 of their buffer (the child rebuilds the view at the same offset). */
function misalignedView(): Uint8Array {
  const buf = new Uint8Array(1 + 2 * oddPatterns.length);
  oddPatterns.forEach((v, i) => { buf[1 + 2 * i] = v & 0xff; buf[2 + 2 * i] = v >> 8; });
  return new Uint8Array(buf.buffer, 1, 2 * oddPatterns.length);
}
const f32Values = new Float32Array([1.5, -0, Infinity, 3.4e38, 1e-45, -2.25]);

/**
 * The engine's own path here, and the portable path in a child process with SHORTGPT_NO_AVX2=1:
 * the addon reads it with getenv on every call, which jest's copy of process.env never reaches.
 */
describe.each([
  ['avx2/f16c path', undefined],
  ['portable path', { SHORTGPT_NO_AVX2: '1' }],
] as Array<[string, KernelEnv | undefined]>)('convertToF32 (%s)', (_name, env) => {
  let kernel: string;
  let out: Float32Array[];
  beforeAll(() => {
    const calls: KernelCall[] = [
      { fn: 'convertToF32ForTest', args: [allPatterns(), 'F16'] },
      { fn: 'convertToF32ForTest', args: [allPatterns(), 'BF16'] },
      { fn: 'convertToF32ForTest', args: [misalignedView(), 'F16'] },
      { fn: 'convertToF32ForTest', args: [misalignedView(), 'BF16'] },
      { fn: 'convertToF32ForTest', args: [new Uint8Array(f32Values.buffer), 'F32'] },
    ];
    ({ kernel, results: out } = runKernelBatch(env, calls));
  });

  const patterns = new Uint16Array(allPatterns().buffer);

  it('runs where the AVX2 switch (useAvx2Kernels, read by the converters too) is what the environment says', () => {
    // cpuInfo().kernel is 'portable' exactly when that switch is off (or the CPU lacks AVX2/FMA).
    expect(kernel).toBe(expectedKernel(env));
  });

  it('converts all 65536 F16 bit patterns exactly', () => {
    expect(out[0]!.length).toBe(65536);
    expect(mismatches(out[0]!, f16Value, patterns)).toEqual([]);
  });

  it('converts all 65536 BF16 bit patterns exactly', () => {
    expect(mismatches(out[1]!, bf16Value, patterns)).toEqual([]);
  });

  it('reads misaligned input of a length that is not a multiple of the vector width', () => {
    const p = Uint16Array.from(oddPatterns);
    expect(mismatches(out[2]!, f16Value, p)).toEqual([]);
    expect(mismatches(out[3]!, bf16Value, p)).toEqual([]);
  });

  it('copies F32 unchanged', () => {
    expect(Array.from(out[4]!)).toEqual(Array.from(f32Values));
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
