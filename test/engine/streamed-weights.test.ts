/**
 * A layer's weights read where they lie (native/cpu/streamed_layer.h): each GEMM tile packs the K
 * slice it needs, instead of the whole layer being packed first, in exact mode (gemm_streamed.cc)
 * and in fast mode (gemm_bf16_driver.cc). The engine streams when a layer meets one batch of rows
 * and packs first when there are several; SHORTGPT_WEIGHT_STAGE=packed|streamed forces either, so
 * the two run side by side in child processes (the addon reads the variable with getenv, which
 * jest's process.env never reaches) and must agree bit for bit: every layer's scores and
 * per-window sums and the perplexity, on every generated architecture and dtype (stacked q|k|v
 * and gate|up, Baichuan's W_pack, Phi-3's fused projections, MoE layers whose attention streams
 * while experts stay packed, odd shapes with K not a multiple of 32) and on stories260k. A NaN or
 * Inf weight gives the error packing gives: same code, same tensor, element and value, in each
 * dtype and in each of the four projections. Fast mode is skipped with a note where the CPU has
 * no BF16 kernel.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CHECKPOINT_CASES, generateCase, VOCAB } from '../helpers/checkpointCases';
import { loadBinding } from '../../lib/engine/binding';
import { locateTensor } from '../hostile/helpers/poison';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { randomSequences } from '../reference/sequences';

const kernels = loadBinding().cpuInfo().bf16Kernels;
if (kernels.length === 0) {
  // eslint-disable-next-line no-console
  console.log(`streamed-weights.test: SKIPPED fast mode: ${loadBinding().cpuInfo().bf16Unavailable}`);
}
const precisions: Array<'f32' | 'bf16'> = kernels.length > 0 ? ['f32', 'bf16'] : ['f32'];
const child = path.join(repoRoot, 'test', 'native', 'helpers', 'prefetchChild.js');
const packed = { SHORTGPT_WEIGHT_STAGE: 'packed' };
const streamed = { SHORTGPT_WEIGHT_STAGE: 'streamed' };

let tmp: string;
let jobs = 0;
function run<T>(job: Record<string, unknown>, env: Record<string, string> = {}): T {
  const jobFile = path.join(tmp, `job-${jobs++}.json`);
  fs.writeFileSync(jobFile, JSON.stringify(job));
  const base = { ...process.env };
  delete base.SHORTGPT_WEIGHT_STAGE;
  delete base.SHORTGPT_BF16_FUSE_SWIGLU;
  const r = spawnSync(process.execPath, [child, jobFile], { encoding: 'utf8', timeout: 300_000, env: { ...base, ...env }, cwd: repoRoot });
  if (r.status !== 0) throw new Error(`prefetchChild failed (${r.status} ${r.signal ?? ''}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A copy of `src` with element `element` of tensor `name` set to the raw little-endian `bits` of its dtype. */
function poisoned(src: string, dst: string, name: string, element: number, value: number): string {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const file = path.join(dst, 'model.safetensors');
  const loc = locateTensor(file, name);
  let bytes: Buffer;
  if (loc.dtype === 'F32') {
    bytes = Buffer.alloc(4);
    bytes.writeFloatLE(value);
  } else {
    bytes = Buffer.alloc(2);
    // NaN or Inf of either 16-bit format, by its bits.
    if (loc.dtype === 'BF16') bytes.writeUInt16LE(Number.isNaN(value) ? 0x7fc0 : value > 0 ? 0x7f80 : 0xff80);
    else bytes.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00);
  }
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, loc.start + bytes.length * element);
  } finally {
    fs.closeSync(fd);
  }
  return dst;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-streamed-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each(precisions)('precision %s: weights read where they lie equal weights packed first', (precision) => {
  test(`every generated case (${CHECKPOINT_CASES.length}) and stories260k: scores, per-window sums and perplexity bit for bit`, async () => {
    const dirs: string[] = [];
    for (const c of CHECKPOINT_CASES) {
      const dir = path.join(tmp, c.name.replace(/[^A-Za-z0-9]+/g, '-'));
      if (!fs.existsSync(dir)) await generateCase(dir, c);
      dirs.push(dir);
    }
    // 5..130 tokens: row blocks cut at 32, two windows sharing a batch; ids below every case's vocabulary.
    const job = { kind: 'scoreEach', dirs, sequences: randomSequences([5, 37, 70, 130], VOCAB), threads: 2, precision };
    const byDefault = run<{ results: unknown[] }>(job); // one batch: streamed
    expect(run(job, packed)).toEqual(byDefault);
    expect(run(job, streamed)).toEqual(byDefault);
    // 600 + 500 tokens of stories260k: two 1024-token batches per layer (packed by default).
    const stories = { ...job, dirs: [stories260kDir], sequences: randomSequences([600, 500], 512) };
    const storiesPacked = run(stories, packed);
    expect(run(stories, streamed)).toEqual(storiesPacked);
    if (precision === 'bf16') {
      // SwiGLU fused into the gate|up store (both paths, by default) against gate|up stored and
      // swiglu() run after.
      const unfused = { SHORTGPT_BF16_FUSE_SWIGLU: '0' };
      expect(run(job, { ...packed, ...unfused })).toEqual(byDefault);
      expect(run(stories, { ...packed, ...unfused })).toEqual(storiesPacked);
    }
  }, 600_000);

  const poisonCases: Array<[string, string, string, number]> = [
    // [case, tensor of layer 1, dtype note, element]
    ['LlamaForCausalLM BF16', 'self_attn.k_proj', 'BF16', 3 * 64 + 5],
    ['LlamaForCausalLM BF16', 'mlp.down_proj', 'BF16', 7],
    ['LlamaForCausalLM F16', 'self_attn.o_proj', 'F16', 100],
    ['LlamaForCausalLM F32', 'mlp.up_proj', 'F32', 329],
    ['BaiChuanForCausalLM BF16 (Baichuan 1)', 'self_attn.W_pack', 'BF16', 1000],
  ];
  test.each(poisonCases)('%s: a non-finite %s weight gives the error packing gives', async (caseName, tensor, _dtype, element) => {
    const c = CHECKPOINT_CASES.find((x) => x.name === caseName)!;
    const src = path.join(tmp, `src-${caseName.replace(/[^A-Za-z0-9]+/g, '-')}`);
    if (!fs.existsSync(src)) await generateCase(src, c);
    for (const value of [NaN, -Infinity]) {
      const name = `model.layers.1.${tensor}.weight`;
      const dir = poisoned(src, path.join(tmp, `nan-${jobs}`), name, element, value);
      const job = { kind: 'steps', dir, sequences: randomSequences([40, 70], VOCAB), threads: 2, precision, steps: [{ layer: 0 }, { layer: 1 }] };
      const fromMap = run<{ steps: Array<{ code?: string; message?: string }> }>(job, streamed);
      const first = run<{ steps: Array<{ code?: string; message?: string }> }>(job, packed);
      expect(fromMap.steps[1]!.code).toBe('ERR_NONFINITE_WEIGHT');
      expect(fromMap.steps[1]!.message).toContain(`tensor '${name}'`);
      expect(fromMap.steps[1]!.message).toBe(first.steps[1]!.message);
    }
  }, 120_000);
});
