/**
 * Fast mode (precision 'bf16', native/cpu/gemm_bf16.cc) against exact mode (f32) on the same
 * inputs: Block Influence and angular distance within 2e-3 absolute on every generated
 * architecture (test/helpers/checkpointCases.ts) and on stories260k, the same layer ranking on
 * stories260k's golden windows, perplexity within 1% relative. Every BF16 kernel this CPU has
 * runs on stories260k (AMX in process; AVX512-BF16 in a child with SHORTGPT_NO_AMX=1); where there
 * is none the suite is skipped with a note, and only the error paths are tested.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CHECKPOINT_CASES as cases, generateCase, VOCAB } from '../helpers/checkpointCases';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { loadBinding } from '../../lib/engine/binding';
import { scoreLayers, type LayerScores } from '../../lib/scoring/scoreLayers';
import { perplexity } from '../../lib/eval/perplexity';
import { main } from '../../lib/cli/main';
import { runBench } from '../../lib/bench/runner';
import { llamaShape } from '../../lib/bench/shapes';
import { randomSequences } from '../reference/sequences';
import { stories260kDir } from '../helpers/paths';
import { capture } from '../helpers/io';
import { goldenTokensFile, loadGoldenTokens } from '../helpers/golden';

const SCORE_TOL = 2e-3;
const PPL_REL_TOL = 0.01;

const binding = loadBinding();
const kernels = binding.cpuInfo().bf16Kernels;
if (kernels.length === 0) {
  // eslint-disable-next-line no-console
  console.log(`precision-bf16.test: SKIPPED the bf16 accuracy suite: ${binding.cpuInfo().bf16Unavailable}`);
}
const withKernels = kernels.length > 0 ? describe : describe.skip;

const cliJs = path.join(__dirname, '..', 'prune', 'helpers', 'cli.js');
const tsRequire = path.join(__dirname, '..', 'prune', 'helpers', 'tsRequire.js');

/**
 * Runs `code` (CommonJS, may require the TypeScript sources) in a child process with `env` added:
 * jest gives tests a copy of process.env, so the addon's getenv never sees variables set here.
 */
function childJson<T>(code: string, env: Record<string, string>): T {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(tsRequire)});${code}`], {
    env: { ...process.env, ...env }, encoding: 'utf8', cwd: path.join(__dirname, '..', '..'),
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function worstScoreGap(a: LayerScores, b: LayerScores): number {
  let worst = 0;
  for (let l = 0; l < a.layers.length; l++) {
    worst = Math.max(worst, Math.abs(a.layers[l]!.blockInfluence - b.layers[l]!.blockInfluence),
      Math.abs(a.layers[l]!.angularDistance - b.layers[l]!.angularDistance));
  }
  return worst;
}

const ranking = (s: LayerScores): number[] => s.layers.map((l, i) => [l.blockInfluence, i] as const).sort((x, y) => x[0] - y[0]).map(([, i]) => i);

withKernels('bf16 vs f32 on every generated architecture', () => {
  const sequences = randomSequences([5, 37, 70, 130], VOCAB);
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-bf16-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test.each(cases)('$name: BI and angular within 2e-3, perplexity within 1%', async ({ name, opts, edit }) => {
    const dir = path.join(root, name.replace(/[^A-Za-z0-9]+/g, '-'));
    await generateCase(dir, { opts, edit });
    const ckpt = await openCheckpoint(dir);
    const seqs = sequences.map((s) => s.map((t) => t % ckpt.config.vocabSize));
    const exact = await scoreLayers(ckpt, seqs, { threads: 2 });
    const exactPpl = await perplexity(ckpt, seqs, { threads: 2 });
    const fast = await scoreLayers(ckpt, seqs, { threads: 2, precision: 'bf16' });
    expect(worstScoreGap(fast, exact)).toBeLessThanOrEqual(SCORE_TOL);
    const fastPpl = await perplexity(ckpt, seqs, { threads: 2, precision: 'bf16' });
    expect(Math.abs(fastPpl.perplexity / exactPpl.perplexity - 1)).toBeLessThanOrEqual(PPL_REL_TOL);
  });
});

withKernels('bf16 vs f32 on stories260k, the golden windows', () => {
  const tokens = loadGoldenTokens();
  let ckpt: Checkpoint;
  let exact: LayerScores;
  let exactPpl: number;
  beforeAll(async () => {
    ckpt = await openCheckpoint(stories260kDir);
    exact = await scoreLayers(ckpt, tokens, { threads: 2 });
    exactPpl = (await perplexity(ckpt, tokens, { threads: 2 })).perplexity;
  });

  const check = (fast: LayerScores, fast1: LayerScores, ppl: number): void => {
    const gap = worstScoreGap(fast, exact);
    expect(gap).toBeLessThanOrEqual(SCORE_TOL);
    expect(gap).toBeGreaterThan(0);  // it really ran in bf16: an f32 run would be identical
    expect(ranking(fast)).toEqual(ranking(exact));
    expect(fast1.layers).toEqual(fast.layers);  // deterministic for any thread count
    expect(Math.abs(ppl / exactPpl - 1)).toBeLessThanOrEqual(PPL_REL_TOL);
  };

  test(`${kernels[0] ?? 'none'} (the default kernel): scores within 2e-3, same ranking, perplexity within 1%, any thread count`, async () => {
    const fast = await scoreLayers(ckpt, tokens, { threads: 2, precision: 'bf16' });
    const fast1 = await scoreLayers(ckpt, tokens, { threads: 1, precision: 'bf16' });
    const ppl = (await perplexity(ckpt, tokens, { threads: 2, precision: 'bf16' })).perplexity;
    check(fast, fast1, ppl);
  });

  (kernels.length > 1 ? test : test.skip)('avx512-bf16 (SHORTGPT_NO_AMX=1, in a child process): the same checks', () => {
    const r = childJson<{ kernel: string; fast: LayerScores; fast1: LayerScores; ppl: number }>(`
      const { loadBinding } = require('./lib/engine/binding.ts');
      const { scoreLayers } = require('./lib/scoring/scoreLayers.ts');
      const { perplexity } = require('./lib/eval/perplexity.ts');
      const tokens = JSON.parse(require('fs').readFileSync(${JSON.stringify(goldenTokensFile)}, 'utf8'));
      const dir = ${JSON.stringify(stories260kDir)};
      (async () => {
        const fast = await scoreLayers(dir, tokens, { threads: 2, precision: 'bf16' });
        const fast1 = await scoreLayers(dir, tokens, { threads: 1, precision: 'bf16' });
        const ppl = (await perplexity(dir, tokens, { threads: 2, precision: 'bf16' })).perplexity;
        process.stdout.write(JSON.stringify({ kernel: loadBinding().cpuInfo().bf16Kernel, fast, fast1, ppl }));
      })().catch((e) => { console.error(e); process.exit(1); });`, { SHORTGPT_NO_AMX: '1' });
    expect(r.kernel).toBe('avx512-bf16');
    check(r.fast, r.fast1, r.ppl);
  });

  test('score --precision bf16 prints the same ranking; f32 stays the default', async () => {
    const run = async (extra: string[]) => {
      const io = capture();
      expect(await main(['score', stories260kDir, '--tokens', goldenTokensFile, '--json', '--threads', '2', '--device', 'cpu', ...extra], io)).toBe(0);
      return JSON.parse(io.out()) as { layers: { layer: number; bi: number; rank: number }[] };
    };
    const fast = await run(['--precision', 'bf16']);
    const def = await run([]);
    const f32 = await run(['--precision', 'f32']);
    expect(f32).toEqual(def);
    for (const l of fast.layers) {
      expect(l.rank).toBe(def.layers.find((d) => d.layer === l.layer)!.rank);
      expect(Math.abs(l.bi - exact.layers[l.layer]!.blockInfluence)).toBeLessThanOrEqual(SCORE_TOL);
    }
    expect(def.layers.map((l) => l.bi)).toEqual(exact.layers.map((l) => l.blockInfluence));
  });
});

describe('precision option errors', () => {
  test('bf16 without a BF16 kernel is ERR_PRECISION_UNAVAILABLE saying why, from the library and the CLI (exit 1, nothing printed)', () => {
    // SHORTGPT_NO_BF16=1 hides the kernels (read by the addon, so in a child process).
    const lib = childJson<{ code: string; message: string }>(`
      const { scoreLayers } = require('./lib/scoring/scoreLayers.ts');
      scoreLayers(${JSON.stringify(stories260kDir)}, [[1, 2, 3]], { threads: 1, precision: 'bf16' })
        .then(() => process.stdout.write('{"code":"none"}'))
        .catch((e) => process.stdout.write(JSON.stringify({ code: e.code, message: e.message })));`, { SHORTGPT_NO_BF16: '1' });
    expect(lib.code).toBe('ERR_PRECISION_UNAVAILABLE');
    expect(lib.message).toMatch(/needs a BF16 GEMM kernel \(AMX-BF16 or AVX512-BF16\): .+; use precision 'f32'/);
    const cli = spawnSync(process.execPath, [cliJs, 'score', stories260kDir, '--tokens', goldenTokensFile, '--precision', 'bf16', '--device', 'cpu'], {
      env: { ...process.env, SHORTGPT_NO_BF16: '1' }, encoding: 'utf8',
    });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/--precision bf16 needs a CPU with AMX-BF16 or AVX512-BF16: .+; use --precision f32/);
    expect(cli.stdout).toBe('');
  });

  test('a bad --precision is a usage error (exit 2) naming the option', async () => {
    const io = capture();
    expect(await main(['score', stories260kDir, '--tokens', goldenTokensFile, '--precision', 'fp8'], io)).toBe(2);
    expect(io.err()).toMatch(/--precision must be f32 or bf16, got 'fp8'/);
  });

  test('a bad library precision is ERR_INVALID_ARG', async () => {
    await expect(scoreLayers(stories260kDir, [[1, 2, 3]], { threads: 1, precision: 'fp8' as 'f32' }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
  });
});

withKernels('bench --precision bf16', () => {
  test('runBench times the bf16 path and names its kernel; the CLI prints it in the header', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-bf16-bench-'));
    try {
      const tiny = llamaShape('custom', { hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 48, vocabSize: 300 });
      const r = await runBench({ shape: tiny, seqLen: 9, threads: 1, gemmIterations: 1, skipPeak: true, precision: 'bf16', tempParent: tmp });
      expect(r.precision).toBe('bf16');
      expect(r.kernel).toBe(binding.cpuInfo().bf16Kernel);
      expect(r.gemm.length).toBeGreaterThan(0);
      const io = capture();
      expect(await main(['bench', '--shape', 'custom', '--hidden', '32', '--layers', '2', '--heads', '4', '--kv-heads', '2',
        '--intermediate', '48', '--vocab', '300', '--seq-len', '9', '--threads', '1', '--gemm-iterations', '0', '--precision', 'bf16'], io)).toBe(0);
      expect(io.out()).toMatch(/kernel (amx-bf16|avx512-bf16); synthetic F32 weights; precision bf16/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
