/**
 * The CPU backend's weight prefetch (issue 11): while layer l computes, a helper thread reads and
 * packs layer l+1's weights (forwardLayer's `next`) into a second set of packed buffers. Checked
 * against the same work with the prefetch off, in child processes started with SHORTGPT_PREFETCH=1
 * or =0 (jest's process.env never reaches the addon's getenv; by default the prefetch thread runs
 * only where the pool leaves a hardware thread free, which a 2-core machine with 2 threads does not):
 *
 * - scores and perplexity are bit-identical with and without it, f32 and 16-bit checkpoints, and
 *   when the hint names a layer that does not run next (the fall-back path);
 * - a NaN in the next layer's weights fails when that layer runs, not earlier, with the same code
 *   and message (tensor, element, value) as without the prefetch; in fast mode too, where BF16
 *   checkpoints are packed straight to bf16 (no f32 round trip) and NaN found on the bf16 bits;
 * - fast mode on a BF16 checkpoint (packed straight to bf16) equals fast mode on the same values
 *   widened to an F32 checkpoint (packed through f32), bit for bit;
 * - cancelling, or disposing, while a prefetch is in flight (held back by the test hook
 *   SHORTGPT_PREFETCH_DELAY_MS) returns promptly: the helper thread is stopped and joined.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding } from '../../lib/engine/binding';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { locateTensor, poisonedCopy } from '../hostile/helpers/poison';
import { repoRoot, stories260kDir } from '../helpers/paths';

const child = path.join(repoRoot, 'test', 'native', 'helpers', 'prefetchChild.js');
const bf16Kernels = loadBinding().cpuInfo().bf16Kernels;

let tmp: string;
let bf16Dir: string; // generated Llama, BF16 weights
let bf16OddDir: string; // generated Qwen2, BF16, K not a multiple of 32
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-prefetch-'));
  bf16Dir = path.join(tmp, 'llama-bf16');
  await generateCheckpoint(bf16Dir, { architecture: 'LlamaForCausalLM', dtype: 'BF16', layers: 3, vocabSize: 96, maxPositionEmbeddings: 256, hiddenSize: 64, intermediateSize: 96 });
  bf16OddDir = path.join(tmp, 'qwen2-bf16-odd');
  await generateCheckpoint(bf16OddDir, {
    architecture: 'Qwen2ForCausalLM', dtype: 'BF16', layers: 2, vocabSize: 96, maxPositionEmbeddings: 256,
    hiddenSize: 72, intermediateSize: 100, numAttentionHeads: 4, numKeyValueHeads: 2,
  });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface StepOut { stats?: unknown; code?: string; message?: string; seconds?: number }

let jobCount = 0;
/** Runs a prefetchChild job with extra environment variables; returns its JSON output. */
function run<T>(job: Record<string, unknown>, env: Record<string, string> = {}): T {
  const jobFile = path.join(tmp, `job-${jobCount++}.json`);
  fs.writeFileSync(jobFile, JSON.stringify(job));
  const base = { ...process.env };
  delete base.SHORTGPT_PREFETCH_DELAY_MS;
  // The prefetch packs the next layer, so layers are packed even where one batch would stream them.
  const r = spawnSync(process.execPath, [child, jobFile], { encoding: 'utf8', timeout: 120_000, env: { ...base, SHORTGPT_PREFETCH: '1', SHORTGPT_WEIGHT_STAGE: 'packed', ...env }, cwd: repoRoot });
  if (r.status !== 0) throw new Error(`prefetchChild failed (${r.status} ${r.signal ?? ''}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
const off = { SHORTGPT_PREFETCH: '0' };

/** Deterministic token sequences with ids in [1, vocab). */
function sequences(lengths: number[], vocab: number): number[][] {
  return lengths.map((n, s) => Array.from({ length: n }, (_, i) => 1 + ((i * 37 + s * 11 + ((i * i) % 13)) % (vocab - 1))));
}

/** A copy of a single-file safetensors checkpoint with every BF16 tensor widened to F32 (exact: bits << 16). */
function widenBf16(src: string, dst: string): string {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const buf = fs.readFileSync(path.join(src, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(header).sort(([, a], [, b]) => (a.data_offsets?.[0] ?? 0) - (b.data_offsets?.[0] ?? 0))) {
    if (name === '__metadata__') {
      out[name] = t;
      continue;
    }
    let bytes = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    if (t.dtype === 'BF16') {
      const wide = Buffer.alloc(bytes.length * 2);
      for (let i = 0; i < bytes.length / 2; i++) wide.writeUInt32LE(bytes.readUInt16LE(2 * i) * 65536, 4 * i);
      bytes = wide;
    }
    out[name] = { dtype: t.dtype === 'BF16' ? 'F32' : t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(out);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.writeFileSync(path.join(dst, 'model.safetensors'), Buffer.concat([len, Buffer.from(json), ...parts]));
  const config = JSON.parse(fs.readFileSync(path.join(dst, 'config.json'), 'utf8')) as Record<string, unknown>;
  config.torch_dtype = 'float32';
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify(config, null, 2));
  return dst;
}

/** Sets element `element` of BF16 tensor `name` to a NaN (0x7fc0) in a copy of `src`. */
function poisonBf16(src: string, dst: string, name: string, element: number): string {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const file = path.join(dst, 'model.safetensors');
  const loc = locateTensor(file, name);
  expect(loc.dtype).toBe('BF16');
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.from([0xc0, 0x7f]), 0, 2, loc.start + 2 * element);
  } finally {
    fs.closeSync(fd);
  }
  return dst;
}

describe('results with and without the prefetch', () => {
  const cases: [string, () => string, number, string | undefined][] = [
    ['stories260k (F32)', () => stories260kDir, 512, undefined],
    ['generated Llama (BF16)', () => bf16Dir, 96, undefined],
  ];
  if (bf16Kernels.length > 0) cases.push(['generated Llama (BF16), --precision bf16', () => bf16Dir, 96, 'bf16']);
  it.each(cases)('%s: scores and perplexity are bit-identical', (_name, dir, vocab, precision) => {
    // 3 sequences of 200..500 tokens: two batches per layer (1024-token batches).
    const job = { kind: 'score', dir: dir(), sequences: sequences([500, 450, 200], Math.min(vocab, 512)), threads: 2, precision };
    const on = run<{ scores: unknown; perplexity: unknown }>(job);
    expect(run(job, off)).toEqual(on);
  });

  it('a hint naming a layer that does not run next falls back to packing on the critical path', () => {
    const job = {
      kind: 'steps', dir: stories260kDir, sequences: sequences([300, 120], 512), threads: 2,
      steps: [{ layer: 0, next: 3 }, { layer: 1, next: 2 }, { layer: 2, next: 4 }, { layer: 3, next: null }, { layer: 4, next: 0 }],
    };
    const on = run<{ steps: StepOut[] }>(job);
    expect(on.steps).toHaveLength(5);
    for (const s of on.steps) expect(s.code).toBeUndefined();
    expect(run<{ steps: StepOut[] }>(job, off).steps).toEqual(on.steps);
  });
});

// Hidden 64 / intermediate 96 are multiples of the packed K granule (32); Qwen2 at hidden 72,
// intermediate 100 is not: rows land at a padded stride there, the padding zeroed.
(bf16Kernels.length > 0 ? it.each : it.skip.each)([
  ['Llama, hidden 64, intermediate 96', () => bf16Dir],
  ['Qwen2 (biases), hidden 72, intermediate 100', () => bf16OddDir],
])('fast mode: a BF16 checkpoint packed straight to bf16 equals the same values packed through f32 (%s)', (name, source) => {
  const src = source();
  const wide = widenBf16(src, path.join(tmp, `widened-${name.split(',')[0]}`));
  const seqs = sequences([200, 150], 96);
  const direct = run({ kind: 'score', dir: src, sequences: seqs, threads: 2, precision: 'bf16' });
  const throughF32 = run({ kind: 'score', dir: wide, sequences: seqs, threads: 2, precision: 'bf16' });
  // The reports name their checkpoint directory; everything else must match.
  const named = (x: unknown, dir: string): unknown => JSON.parse(JSON.stringify(x).split(dir).join('<model>'));
  expect(named(direct, src)).toEqual(named(throughF32, wide));
  // And the widened copy really is read as F32 (exact mode gives the BF16 original's results).
  const exactWide = run({ kind: 'score', dir: wide, sequences: seqs, threads: 2 });
  expect(locateTensor(path.join(wide, 'model.safetensors'), 'model.layers.0.mlp.up_proj.weight').dtype).toBe('F32');
  expect(named(exactWide, wide)).toEqual(named(run({ kind: 'score', dir: src, sequences: seqs, threads: 2 }), src));
});

describe('a NaN in the next layer fails when that layer runs, as without the prefetch', () => {
  const steps = [{ layer: 0, next: 1 }, { layer: 1, next: 2 }, { layer: 2, next: null }];

  // The prefetch either runs free, or (SHORTGPT_PREFETCH_DELAY_MS) packs only the first part
  // (q|k|v) before the layer starts, which then packs the rest itself: the NaN is found by the
  // prefetcher (q_proj: kept and rethrown) or by the layer (gate_proj, when held back).
  it.each([
    ['gate_proj', 'mlp.gate_proj', {}],
    ['gate_proj, prefetch held back after q|k|v', 'mlp.gate_proj', { SHORTGPT_PREFETCH_DELAY_MS: '300' }],
    ['q_proj, prefetch held back after q|k|v', 'self_attn.q_proj', { SHORTGPT_PREFETCH_DELAY_MS: '300' }],
  ])('f32 checkpoint, exact mode: %s', (_name, tensor, env) => {
    const I = 172;
    const dir = poisonedCopy(stories260kDir, path.join(tmp, `nan-${jobCount}`), [
      { tensor: `model.layers.1.${tensor}.weight`, elements: [7 * 64 + 3], value: NaN },
      { tensor: 'model.layers.1.mlp.down_proj.weight', elements: [2 * I + 1], value: Infinity }, // packed later: not reported
    ]);
    const job = { kind: 'steps', dir, sequences: sequences([300, 120], 512), threads: 2, steps };
    const on = run<{ steps: StepOut[] }>(job, env);
    const without = run<{ steps: StepOut[] }>(job, off);
    expect(on.steps).toHaveLength(2);
    expect(on.steps[0].stats).toEqual(without.steps[0].stats); // layer 0 ran to the end
    expect(on.steps[1].code).toBe('ERR_NONFINITE_WEIGHT');
    const name = `model.layers.1.${tensor}.weight`.replace(/\./g, '\\.');
    expect(on.steps[1].message).toMatch(new RegExp(`^layer 1: tensor '${name}' .*\\(NaN\\) at element 451 = position \\[7, 3\\]`));
    expect([on.steps[1].code, on.steps[1].message]).toEqual([without.steps[1].code, without.steps[1].message]);
  });

  const modes: [string, string | undefined][] = [['exact mode', undefined]];
  if (bf16Kernels.length > 0) modes.push(['fast mode (bf16 rows packed directly)', 'bf16']);
  it.each(modes)('BF16 checkpoint, %s', (_name, precision) => {
    const dir = poisonBf16(bf16Dir, path.join(tmp, `nan-up-1-${precision ?? 'f32'}`), 'model.layers.1.mlp.up_proj.weight', 5 * 64 + 9);
    const job = { kind: 'steps', dir, sequences: sequences([200, 100], 96), threads: 2, precision, steps };
    const on = run<{ steps: StepOut[] }>(job);
    const without = run<{ steps: StepOut[] }>(job, off);
    expect(on.steps).toHaveLength(2);
    expect(on.steps[0].stats).toEqual(without.steps[0].stats);
    expect(on.steps[1].code).toBe('ERR_NONFINITE_WEIGHT');
    expect(on.steps[1].message).toMatch(/^layer 1: tensor 'model\.layers\.1\.mlp\.up_proj\.weight' .*\(NaN\) at element 329 = position \[5, 9\]/);
    expect(on.steps[1].message).toBe(without.steps[1].message);
  });
});

describe('the helper thread is stopped and joined promptly', () => {
  // The prefetch is held back 20 s (stoppable every 10 ms): a join that waited for it would show.
  const delayed = { SHORTGPT_PREFETCH_DELAY_MS: '20000' };

  it('cancelling a layer while the next one is being prefetched', async () => {
    // Wide enough that each of the 8 batches takes tens of ms: the abort sent after the first
    // progress report lands while batches remain.
    const dir = path.join(tmp, 'llama-wide');
    await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 2, vocabSize: 96, maxPositionEmbeddings: 512, hiddenSize: 512, intermediateSize: 1024 });
    const job = {
      kind: 'steps', dir, sequences: sequences(Array(16).fill(500), 96), threads: 2,
      steps: [{ layer: 0, next: 1, abortAfterBatches: 1 }],
    };
    const t0 = Date.now();
    const out = run<{ steps: StepOut[]; disposeSeconds: number }>(job, delayed);
    expect(out.steps[0].code).toBe('ERR_ABORTED');
    expect(out.steps[0].seconds).toBeLessThan(5);
    expect(out.disposeSeconds).toBeLessThan(5);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('disposing while the next layer is being prefetched', () => {
    const job = { kind: 'steps', dir: stories260kDir, sequences: sequences([100], 512), threads: 2, steps: [{ layer: 0, next: 1 }] };
    const t0 = Date.now();
    const out = run<{ steps: StepOut[]; disposeSeconds: number }>(job, delayed);
    expect(out.steps[0].stats).toBeDefined();
    expect(out.disposeSeconds).toBeLessThan(5);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('a layer whose prefetch was held back after q|k|v packs the rest itself: the same statistics', () => {
    const job = {
      kind: 'steps', dir: stories260kDir, sequences: sequences([100], 512), threads: 2,
      steps: [{ layer: 0, next: 1 }, { layer: 1, next: null }],
    };
    const slow = run<{ steps: StepOut[] }>(job, { SHORTGPT_PREFETCH_DELAY_MS: '300' });
    expect(slow.steps).toEqual(run<{ steps: StepOut[] }>(job, off).steps);
  });
});
