/**
 * Fast mode's attention on AMX tiles (native/cpu/attention_amx.cc) against a float64 causal
 * attention of the bf16-rounded Q, K and V computed here (masking, GQA, sliding windows and the
 * softmax written from their definitions). The kernel also rounds the softmax weights P to bf16
 * before P.V while the row sums use the unrounded weights, so each output is within about
 * 2^-9 * max|v| of the reference; a wrong mask (a future key, a key outside the window), a
 * skipped block or a wrong kv head is off by orders of magnitude more. Also: the same bits for
 * 1 and 3 threads, rows before queryFrom not needed, and the exact kernels where the AMX one does
 * not apply (soft-capping, a key or value that is not finite in bf16). Skipped with a note where
 * the CPU has no AMX.
 */
import { loadBinding } from '../../lib/engine/binding';
import { rng, roundBf16 } from './half';

const binding = loadBinding();
const hasAmx = binding.cpuInfo().bf16Kernels.includes('amx-bf16');


interface Case {
  lengths: number[];
  heads: number;
  kvHeads: number;
  headDim: number;
  window?: number;
  queryFrom?: number[];
}

function inputs(c: Case, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const rows = c.lengths.reduce((a, b) => a + b, 0);
  const next = rng(seed);
  // Scores of a few units: softmax neither uniform nor one-hot.
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
  return { q: fill(rows * c.heads * c.headDim, 1.5), k: fill(rows * c.kvHeads * c.headDim, 1.5), v: fill(rows * c.kvHeads * c.headDim, 1) };
}

/** float64 causal attention of bf16-rounded q, k, v. */
function reference(c: Case, q: Float32Array, k: Float32Array, v: Float32Array): Float64Array {
  const hd = c.headDim, qd = c.heads * hd, kvd = c.kvHeads * hd, group = c.heads / c.kvHeads;
  const rows = c.lengths.reduce((a, b) => a + b, 0);
  const out = new Float64Array(rows * qd);
  const scale = 1 / Math.sqrt(hd);
  let start = 0;
  for (const len of c.lengths) {
    for (let i = 0; i < len; i++) {
      for (let h = 0; h < c.heads; h++) {
        const g = Math.floor(h / group);
        const lo = c.window ? Math.max(0, i - c.window + 1) : 0;
        const s: number[] = [];
        for (let j = lo; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += roundBf16(q[(start + i) * qd + h * hd + d]) * roundBf16(k[(start + j) * kvd + g * hd + d]);
          s.push(dot * scale);
        }
        const mx = Math.max(...s);
        const p = s.map((x) => Math.exp(x - mx));
        const sum = p.reduce((a, b) => a + b, 0);
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = lo; j <= i; j++) acc += p[j - lo] * roundBf16(v[(start + j) * kvd + g * hd + d]);
          out[(start + i) * qd + h * hd + d] = acc / sum;
        }
      }
    }
    start += len;
  }
  return out;
}

function run(c: Case, x: ReturnType<typeof inputs>, threads: number, precision: 'f32' | 'bf16', softcap = 0): Float32Array {
  return binding.attentionForTest(x.q, x.k, x.v, c.lengths, c.heads, c.kvHeads, c.headDim, c.window ?? 0, softcap, threads, precision, c.queryFrom);
}

const cases: Array<[string, Case]> = [
  ['one token', { lengths: [1], heads: 2, kvHeads: 1, headDim: 64 }],
  ['head_dim 8 (padded to 32), several sequences', { lengths: [5, 37, 70], heads: 4, kvHeads: 2, headDim: 8 }],
  ['head_dim 64, blocks cut at 32', { lengths: [32, 33, 100], heads: 3, kvHeads: 1, headDim: 64 }],
  ['head_dim 80 (not a multiple of 32)', { lengths: [47], heads: 2, kvHeads: 2, headDim: 80 }],
  ['head_dim 128, 130 tokens', { lengths: [130], heads: 4, kvHeads: 1, headDim: 128 }],
  ['sliding window 5', { lengths: [70], heads: 2, kvHeads: 1, headDim: 64, window: 5 }],
  ['sliding window 40 across blocks', { lengths: [3, 150], heads: 2, kvHeads: 2, headDim: 32, window: 40 }],
];

const describeAmx = hasAmx ? describe : describe.skip;
if (!hasAmx) console.warn('attention-bf16: this CPU (or OS) has no AMX-BF16; the AMX attention tests are skipped');

describeAmx('fast-mode attention on AMX tiles', () => {
  test.each(cases)('%s: within 2^-9 max|v| of float64 attention on bf16 inputs', (_name, c) => {
    const x = inputs(c, 11);
    const got = run(c, x, 2, 'bf16');
    const want = reference(c, x.q, x.k, x.v);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(Number.isFinite(worst)).toBe(true);
    expect(worst).toBeLessThan(2 ** -9 * 1.5); // max|v| = 1; the P rounding plus f32 sums
    // And it is not the exact kernels' answer: the bf16 path ran.
    const exact = run(c, x, 2, 'f32');
    expect(got).not.toEqual(exact);
  });

  test('the same bits for 1 and 3 threads', () => {
    const c = cases[2][1];
    const x = inputs(c, 12);
    expect(run(c, x, 3, 'bf16')).toEqual(run(c, x, 1, 'bf16'));
  });

  test('queryFrom: rows at and after it equal the full run', () => {
    const c: Case = { lengths: [70, 40], heads: 2, kvHeads: 1, headDim: 64, queryFrom: [64, 0] };
    const x = inputs(c, 13);
    const part = run(c, x, 2, 'bf16');
    const full = run({ ...c, queryFrom: undefined }, x, 2, 'bf16');
    const qd = c.heads * c.headDim;
    expect(part.subarray(64 * qd)).toEqual(full.subarray(64 * qd));
  });

  test('a NaN or Inf key or value: the exact kernels (rows before it stay finite)', () => {
    const c: Case = { lengths: [70], heads: 2, kvHeads: 1, headDim: 64 };
    for (const [which, value] of [['v', NaN], ['k', Infinity], ['v', 3.4e38]] as const) {
      const x = inputs(c, 15);
      x[which][40 * c.headDim + 3] = value; // key 40 (3.4e38 rounds to a bf16 Inf)
      const got = run(c, x, 2, 'bf16');
      expect(got).toEqual(run(c, x, 2, 'f32'));
      expect(got.subarray(0, 40 * c.heads * c.headDim).every(Number.isFinite)).toBe(true);
    }
  });

  test('soft-capping runs the exact kernels', () => {
    const c = cases[1][1];
    const x = inputs(c, 14);
    expect(run(c, x, 2, 'bf16', 30)).toEqual(run(c, x, 2, 'f32', 30));
  });
});
