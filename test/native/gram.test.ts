/**
 * --heal's native pieces (issue 13): the MLP-output capture, the MᵀM / MᵀY sums, the Cholesky
 * solve and the fold, each against an independent float64 computation written here or in
 * test/reference (the f64 forward pass).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { bindingPath, loadBinding } from '../../lib/engine/binding';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { embeddingRef, layerTensorRefs, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession } from '../../lib/engine/session';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { referenceMlpOutputs } from '../reference/forward64';
import { randomSequences } from '../reference/sequences';
import { mulberry32 } from '../../lib/util/prng';

const VOCAB = 96;
// 251 tokens: crosses the kernel's 64-token tiles unevenly; a 3-token sequence included.
const sequences = randomSequences([3, 41, 77, 130], VOCAB, 5);
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-gram-'));
  await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 5, vocabSize: VOCAB, maxPositionEmbeddings: 256, hiddenSize: 48, intermediateSize: 80 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs layers 0..3 capturing layer 1's MLP output; returns M, h_s (after 1), h_e (after 3) and the engine's sums. */
async function engineSums(threads: number): Promise<{ M: Float32Array; hS: Float32Array; hE: Float32Array; G: Float64Array; B: Float64Array; H: number }> {
  const ckpt = await openCheckpoint(dir);
  const H = ckpt.config.hiddenSize;
  const s = EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads });
  try {
    await s.embed(embeddingRef(ckpt));
    await s.forwardLayer(0, layerTensorRefs(ckpt, 0));
    s.captureMlp(true);
    await s.forwardLayer(1, layerTensorRefs(ckpt, 1));
    const M = s.mlpOutput();
    s.captureMlp(false);
    const hS = s.snapshot();
    await s.forwardLayer(2, layerTensorRefs(ckpt, 2));
    await s.forwardLayer(3, layerTensorRefs(ckpt, 3));
    const hE = s.snapshot();
    const G = new Float64Array(H * H);
    const B = new Float64Array(H * H);
    await s.accumulateHealSums(M, hS, G, B);
    return { M, hS, hE, G, B, H };
  } finally {
    await s.dispose();
  }
}

/** max |a - b| / max |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/** G = MᵀM, B = MᵀY with Y = hE - hS + M, plain float64 loops. */
function sums64(M: ArrayLike<number>, hS: ArrayLike<number>, hE: ArrayLike<number>, H: number): { G: Float64Array; B: Float64Array } {
  const rows = M.length / H;
  const G = new Float64Array(H * H);
  const B = new Float64Array(H * H);
  for (let t = 0; t < rows; t++) {
    for (let i = 0; i < H; i++) {
      const a = M[t * H + i];
      for (let j = 0; j < H; j++) {
        G[i * H + j] += a * M[t * H + j];
        B[i * H + j] += a * (hE[t * H + j] - hS[t * H + j] + M[t * H + j]);
      }
    }
  }
  return { G, B };
}

/** Gaussian elimination with partial pivoting: X = A⁻¹ Bm, all float64 ([n, n], [n, m]). */
function gaussSolve(A: Float64Array, Bm: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(A);
  const x = Float64Array.from(Bm);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    for (let k = 0; k < n; k++) [a[c * n + k], a[p * n + k]] = [a[p * n + k], a[c * n + k]];
    for (let k = 0; k < m; k++) [x[c * m + k], x[p * m + k]] = [x[p * m + k], x[c * m + k]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r * n + c] / a[c * n + c];
      if (f === 0) continue;
      for (let k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
      for (let k = 0; k < m; k++) x[r * m + k] -= f * x[c * m + k];
    }
  }
  for (let r = 0; r < n; r++) for (let k = 0; k < m; k++) x[r * m + k] /= a[r * n + r];
  return x;
}

describe('heal statistics (native)', () => {
  test('the captured MLP output and the residual streams match the float64 reference forward pass', async () => {
    const { M, hS, hE } = await engineSums(2);
    const ref = sequences.map((seq) => referenceMlpOutputs(dir, seq));
    const cat = (pick: (r: (typeof ref)[number]) => Float64Array): Float64Array => {
      const parts = ref.map(pick);
      const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    };
    // f32 engine vs f64 reference: the usual forward-pass tolerance.
    expect(relDiff(M, cat((r) => r.mlp[1]))).toBeLessThan(1e-5);
    expect(relDiff(hS, cat((r) => r.states[2]))).toBeLessThan(1e-5);
    expect(relDiff(hE, cat((r) => r.states[4]))).toBeLessThan(1e-5);
    // And the sums built from the reference's own states agree to the same order.
    const { G, B } = await engineSums(1);
    const H = Math.sqrt(G.length);
    const r64 = sums64(cat((r) => r.mlp[1]), cat((r) => r.states[2]), cat((r) => r.states[4]), H);
    expect(relDiff(G, r64.G)).toBeLessThan(1e-4);
    expect(relDiff(B, r64.B)).toBeLessThan(1e-4);
  });

  test('MᵀM and MᵀY equal a float64 sum over the same captured values within 1e-12, for any thread count', async () => {
    const one = await engineSums(1);
    const two = await engineSums(2);
    const ref = sums64(one.M, one.hS, one.hE, one.H);
    expect(relDiff(one.G, ref.G)).toBeLessThan(1e-12);
    expect(relDiff(one.B, ref.B)).toBeLessThan(1e-12);
    expect(Array.from(two.G)).toEqual(Array.from(one.G));
    expect(Array.from(two.B)).toEqual(Array.from(one.B));
    // Sums accumulate: a second call adds the same again.
    const ckpt = await openCheckpoint(dir);
    const s = EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads: 2 });
    try {
      await s.embed(embeddingRef(ckpt));
      const G = Float64Array.from(one.G);
      const B = Float64Array.from(one.B);
      // h is now the embedding, so Y = emb - emb + M = M: B += MᵀM.
      const h0 = s.snapshot();
      await s.accumulateHealSums(one.M, h0, G, B);
      for (let i = 0; i < G.length; i++) {
        expect(G[i]).toBeCloseTo(2 * one.G[i], 9);
        expect(B[i]).toBeCloseTo(one.B[i] + one.G[i], 9);
      }
      await expect(s.accumulateHealSums(one.M.subarray(1), h0, G, B)).rejects.toMatchObject({ code: 'ERR_SHAPE' });
      expect(() => s.mlpOutput()).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));
    } finally {
      await s.dispose();
    }
  });

  test('the Cholesky solve equals Gaussian elimination; a singular MᵀM is refused, a ridge fixes it', async () => {
    const { G, B, H } = await engineSums(2);
    const native = loadBinding();
    for (const alpha of [0, 0.5]) {
      const A = Float64Array.from(G);
      for (let i = 0; i < H; i++) A[i * H + i] += alpha;
      const want = gaussSolve(A, B, H, H);
      const X = Float64Array.from(B);
      expect(native.healSolve(G, alpha, X, H, H, 2)).toBe(-1);
      expect(relDiff(X, want)).toBeLessThan(1e-8);
      // Thread count does not change the solve.
      const X1 = Float64Array.from(B);
      native.healSolve(G, alpha, X1, H, H, 1);
      expect(Array.from(X1)).toEqual(Array.from(X));
    }
    // Rank 1: positive definite only with a ridge.
    const n = 6;
    const v = [1, 2, 3, 4, 5, 6];
    const S = new Float64Array(n * n).map((_, k) => v[Math.floor(k / n)] * v[k % n]);
    const rhs = new Float64Array(n * 2).fill(1);
    const untouched = Float64Array.from(rhs);
    expect(native.healSolve(S, 0, rhs, n, 2, 1)).toBe(1);
    expect(Array.from(rhs)).toEqual(Array.from(untouched));
    expect(native.healSolve(S, 1e-3, rhs, n, 2, 1)).toBe(-1);
    expect(() => native.healSolve(S, -1, rhs, n, 2, 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => native.healSolve(S, 0, rhs, n, 3, 1)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });

  test('a CUDA session (the fake CUDA library, no GPU) refuses the capture with ERR_UNSUPPORTED naming --heal', async () => {
    const fakeLib = path.join(repoRoot, 'build', 'Release', 'libfakecuda_for_tests.so');
    if (!fs.existsSync(fakeLib)) throw new Error(`${fakeLib} is missing: run \`npm run compile:native\``);
    loadBinding();
    const ckpt = await openCheckpoint(stories260kDir);
    // A child process: the addon loads its CUDA library once per process.
    const script = `
      const b = require(${JSON.stringify(bindingPath())});
      const s = new b.Session({ spec: ${JSON.stringify(nativeModelSpec(ckpt.config))}, sequences: [Int32Array.from([1, 5, 9])], threads: 1, device: 'cuda' });
      try { s.captureMlp(true); process.stdout.write('no error'); } catch (e) { process.stdout.write(e.code + ': ' + e.message); }`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, SHORTGPT_CUDA_LIB: fakeLib } });
    expect(r.stdout).toMatch(/^ERR_UNSUPPORTED: --heal .*use --device cpu/);
  });

  test('the fold Aᵀ W equals a float64 product', () => {
    const next = mulberry32(3);
    const k = 7;
    const n = 5;
    const m = 9;
    const A = Float64Array.from({ length: k * n }, () => next() - 0.5);
    const W = Float64Array.from({ length: k * m }, () => next() - 0.5);
    const C = loadBinding().healFold(A, W, k, n, m, 2);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += A[t * n + i] * W[t * m + j];
        expect(C[i * m + j]).toBeCloseTo(s, 14);
      }
    }
  });
});
