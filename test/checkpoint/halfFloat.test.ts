/**
 * f32 -> f16/bf16 conversion checked exhaustively against the decoders (which are plain
 * arithmetic, independent of the encoders): every finite half value round-trips, and every
 * midpoint between neighbours rounds to the even one, while a float32 ulp either side of it
 * rounds to the nearer.
 */
import { bf16BitsToF32, f16BitsToF32, f32FromBits, f32Bits, f32ToBf16Bits, f32ToF16Bits } from '../../lib/checkpoint/halfFloat';

const nextUp = (x: number): number => f32FromBits(f32Bits(x) + 1);
const nextDown = (x: number): number => f32FromBits(f32Bits(x) - 1);

describe.each([
  ['f16', f32ToF16Bits, f16BitsToF32, 0x7c00],
  ['bf16', f32ToBf16Bits, bf16BitsToF32, 0x7f80],
] as const)('%s', (_name, encode, decode, infBits) => {
  it('round-trips every finite value of both signs', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7fff) >= infBits) continue; // inf / NaN below
      const x = decode(h);
      if (Math.fround(x) !== x) throw new Error(`0x${h.toString(16)} decodes to ${x}, not an f32 value`);
      if (encode(x) !== h) throw new Error(`0x${h.toString(16)} -> ${x} -> 0x${encode(x).toString(16)}`);
    }
  });

  it('rounds midpoints to even and near-midpoints to nearest (positive and negative, subnormals included)', () => {
    let checked = 0;
    for (let h = 0; h < infBits; h++) {
      const lo = decode(h);
      const hi = decode(h + 1); // h + 1 === infBits: the overflow threshold
      const mid = Number.isFinite(hi) ? (lo + hi) / 2 : lo + (lo - decode(h - 1)) / 2;
      if (Math.fround(mid) !== mid) throw new Error(`midpoint ${mid} is not an f32 value`);
      const even = (h & 1) === 0 ? h : h + 1;
      for (const sign of [1, -1]) {
        const s = sign < 0 ? 0x8000 : 0;
        const got = encode(sign * mid);
        if (got !== (even | s)) throw new Error(`midpoint ${sign * mid}: got 0x${got.toString(16)}, want 0x${(even | s).toString(16)}`);
        if (encode(sign * nextDown(mid)) !== (h | s)) throw new Error(`below midpoint of 0x${h.toString(16)}`);
        if (encode(sign * nextUp(mid)) !== ((h + 1) | s)) throw new Error(`above midpoint of 0x${h.toString(16)}`);
      }
      checked++;
    }
    expect(checked).toBe(infBits);
  });

  it('keeps infinities, signed zero and NaN', () => {
    expect(encode(Infinity)).toBe(infBits);
    expect(encode(-Infinity)).toBe(infBits | 0x8000);
    expect(encode(-0)).toBe(0x8000);
    expect(Number.isNaN(decode(encode(NaN)))).toBe(true);
  });
});

describe('f16 specifics', () => {
  it('overflows to infinity exactly at 65520 and keeps 65504 as the largest finite', () => {
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
  });

  it('underflows to zero at or below 2^-25 and rounds up just above it', () => {
    expect(f32ToF16Bits(2 ** -25)).toBe(0);
    expect(f32ToF16Bits(nextUp(2 ** -25))).toBe(1);
    expect(f32ToF16Bits(1e-30)).toBe(0);
    expect(f16BitsToF32(1)).toBe(2 ** -24);
  });

  it('rounds an f32 that is not an f16 value the way float64 arithmetic says', () => {
    expect(f16BitsToF32(f32ToF16Bits(0.1))).toBe(0.0999755859375);
    expect(f16BitsToF32(f32ToF16Bits(1 / 3))).toBe(0.333251953125);
    expect(bf16BitsToF32(f32ToBf16Bits(0.1))).toBe(0.10009765625);
  });
});
