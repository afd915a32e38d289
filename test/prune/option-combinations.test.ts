/**
 * prune's options of this round together (--heal, the quality bounds, --bootstrap, --scores,
 * --precision bf16, --device cuda), through the CLI on the bundled model: each combination
 * either works and its report says what each number is of, or is refused before any work with
 * exit 2 and a message naming both options. Independent checks: the healed run's "plain
 * deletion" and "healed" perplexities are what `eval` measures on the same data with the layers
 * skipped and on the written model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { resetCudaProbe } from '../../lib/engine/device';
import type { PruneReport } from '../../lib/report/types';
import { capture } from '../helpers/io';
import { repoRoot, stories260kDir, tinyStoriesText } from '../helpers/paths';

const fakeCuda = path.join(repoRoot, 'build', 'Release', 'libfakecuda_for_tests.so');
/** Small and quick: 12 calibration windows; the held-out data stops at 4,096 tokens. */
const CALIB = ['--calib', tinyStoriesText, '--samples', '12', '--max-calib-tokens', '4096', '--threads', '2'];
const EVAL = ['--eval', tinyStoriesText];

let tmp: string;
let scoresFile: string;
let taskFile: string;
let n = 0;
/** A fresh output path per case. */
const outDir = (): string => path.join(tmp, `out-${n++}`);

async function cli(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const io = capture();
  const status = await main(args, io);
  return { status, out: io.out(), err: io.err() };
}

const prune = (args: string[]) => cli(['prune', stories260kDir, ...args]);
const readReport = (dir: string): PruneReport => JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as PruneReport;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-option-combos-'));
  const partial = path.join(tmp, 'partial.json');
  scoresFile = path.join(tmp, 'scores.json');
  expect((await cli(['score', stories260kDir, ...CALIB, '--shard', '0/1', '--partial', partial, '--quiet'])).status).toBe(0);
  expect((await cli(['merge', partial, '--out', scoresFile, '--quiet'])).status).toBe(0);
  // Four items whose answers the 260k-parameter model gets mostly right: a task bound it can meet.
  taskFile = path.join(tmp, 'task.jsonl');
  fs.writeFileSync(taskFile, [
    { context: 'Once upon a', choices: [' time', ' dog'], gold: 0 },
    { context: 'The cat sat on the', choices: [' mat', ' sky'], gold: 0 },
    { context: 'Lily and her mom went to the', choices: [' park', ' tomorrow'], gold: 0 },
    { context: 'He was very', choices: [' happy', ' the'], gold: 0 },
  ].map((x) => JSON.stringify(x)).join('\n'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('refused before any work: exit 2, both options named, nothing written', () => {
  it.each([
    ['--remove-layers with a bound', () => ['--remove-layers', '2', '--max-kl', '1'], /--remove-layers.*--max-kl/],
    ['--remove-layers --heal with --eval', () => ['--remove-layers', '2', '--heal', 'lstsq', ...CALIB, ...EVAL], /--remove-layers.*--eval/],
    ['--remove-layers with --bootstrap', () => ['--remove-layers', '2', '--bootstrap', '5'], /--remove-layers.*--bootstrap/],
    ['--scores with --heal', () => ['--scores', scoresFile, '--heal', 'lstsq', '--remove', '1'], /--heal.*--scores/],
    ['--scores with --bootstrap', () => ['--scores', scoresFile, '--bootstrap', '5', '--remove', '1'], /--bootstrap.*--scores/],
    ['--scores with a bound and --strategy block', () => ['--scores', scoresFile, '--strategy', 'block', '--max-kl', '1', ...EVAL], /bound.*--strategy block.*--scores/],
    ['a bound with --strategy iterative', () => [...CALIB, '--strategy', 'iterative', '--max-kl', '1', ...EVAL], /quality bound.*--strategy one-shot or block.*iterative/],
    ['a bound without --eval', () => [...CALIB, '--max-ppl-increase', '10%'], /--max-ppl-increase.*--eval DATA/],
    ['--heal-ridge without --heal', () => [...CALIB, '--heal-ridge', '0.1', '--remove', '1'], /--heal-ridge needs --heal lstsq/],
    ['--task-format without --min-task-acc', () => [...CALIB, '--task-format', 'native', '--remove', '1'], /--task-format.*--min-task-acc/],
  ])('%s', async (_name, args, message) => {
    const out = outDir();
    const r = await prune([...args(), '--out', out]);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('--device cuda with a CPU-only option: refused before CUDA is used, or even probed', () => {
  let saved: { lib?: string; log?: string };
  let log: string;
  beforeAll(() => {
    if (!fs.existsSync(fakeCuda)) throw new Error(`${fakeCuda} is missing: run \`npm run compile:native\``);
    saved = { lib: process.env.SHORTGPT_CUDA_LIB, log: process.env.SHORTGPT_FAKE_CUDA_LOG };
    log = path.join(tmp, 'fake-cuda.log');
  });
  afterAll(() => {
    for (const [k, v] of [['SHORTGPT_CUDA_LIB', saved.lib], ['SHORTGPT_FAKE_CUDA_LOG', saved.log]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    resetCudaProbe();
  });

  const cases: Array<[string, () => string[], RegExp]> = [
    ['prune --heal', () => ['prune', stories260kDir, ...CALIB, '--heal', 'lstsq', '--remove', '1', '--out', outDir()], /--heal lstsq needs --device cpu/],
    ['prune --remove-layers --heal', () => ['prune', stories260kDir, '--remove-layers', '2', '--heal', 'lstsq', ...CALIB, '--out', outDir()], /--heal lstsq needs --device cpu/],
    ['prune --max-ppl-increase', () => ['prune', stories260kDir, ...CALIB, ...EVAL, '--max-ppl-increase', '10%', '--dry-run'], /quality bound \(--max-ppl-increase.*\) needs --device cpu/],
    ['prune --max-kl', () => ['prune', stories260kDir, ...CALIB, ...EVAL, '--max-kl', '0.1', '--dry-run'], /quality bound \(.*--max-kl.*\) needs --device cpu/],
    ['prune --min-task-acc', () => ['prune', stories260kDir, ...CALIB, ...EVAL, '--min-task-acc', `${taskFile}:0.5`, '--dry-run'], /quality bound \(.*--min-task-acc\) needs --device cpu/],
    ['prune --bootstrap', () => ['prune', stories260kDir, ...CALIB, '--bootstrap', '5', '--remove', '1', '--dry-run'], /--bootstrap needs .*--device cpu/],
    ['score --bootstrap', () => ['score', stories260kDir, ...CALIB, '--bootstrap', '5'], /--bootstrap needs .*--device cpu/],
    ['eval --compare', () => ['eval', stories260kDir, '--data', tinyStoriesText, '--compare', stories260kDir], /--compare needs --device cpu/],
    ['eval --tasks', () => ['eval', stories260kDir, '--tasks', taskFile], /--tasks needs --device cpu/],
  ];

  it.each(cases)('%s, where CUDA works (the fake CUDA library): no CUDA session is made', async (_name, args, message) => {
    process.env.SHORTGPT_CUDA_LIB = fakeCuda;
    process.env.SHORTGPT_FAKE_CUDA_LOG = log;
    resetCudaProbe();
    fs.rmSync(log, { force: true });
    const r = await cli([...args(), '--device', 'cuda']);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
    // The fake library logs every backend call; a refusal before any work makes none.
    expect(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '').toBe('');
  });

  it.each(cases)('%s, where CUDA is missing: the same refusal, not the probe\'s error', async (_name, args, message) => {
    process.env.SHORTGPT_CUDA_LIB = '/nonexistent/sg-option-combos/libshortgpt_cuda.so';
    resetCudaProbe();
    const r = await cli([...args(), '--device', 'cuda']);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/ERR_CUDA_UNAVAILABLE/);
  });
});

describe('combinations that work', () => {
  it('--heal with --eval: the perplexity after is the healed model\'s, KL the plain cut\'s, each said so; both match eval', async () => {
    const out = outDir();
    const r = await prune([...CALIB, ...EVAL, '--heal', 'lstsq', '--remove', '1', '--out', out, '--quiet']);
    expect(r.status).toBe(0);
    const rep = readReport(out);
    const h = rep.heal!.perplexity!;
    expect(rep.perplexity!.after).toBe(h.healed);
    expect(rep.perplexity!.before).toBe(h.original);
    expect(rep.perplexity!.klOf).toBe('plain cut');
    expect(h.plain).not.toBe(h.healed);
    expect(r.out).toContain(`; after = the healed model, plain deletion ${h.plain.toFixed(4)})`);
    expect(r.out).toMatch(/top-1 agreement [\d.]+% \(of the plain cut, before healing\)/);
    for (const file of ['report.md', 'README.md']) expect(fs.readFileSync(path.join(out, file), 'utf8')).toContain(`after = the healed model, plain deletion ${h.plain.toFixed(3)}`);
    // Independently: eval with the layer skipped gives the plain number, eval of the written model the healed one.
    const data = ['--data', tinyStoriesText, '--max-calib-tokens', '4096', '--threads', '2', '--json', '--quiet'];
    const plain = await cli(['eval', stories260kDir, ...data, '--skip-layers', rep.removedLayers.join(',')]);
    const healed = await cli(['eval', out, ...data]);
    expect(JSON.parse(plain.out).perplexity).toBeCloseTo(h.plain, 9);
    expect(JSON.parse(healed.out).perplexity).toBeCloseTo(h.healed, 9);
  });

  it.each([
    ['--max-ppl-increase', () => ['--max-ppl-increase', '150%']],
    ['--max-kl', () => ['--max-kl', '1']],
    ['--min-task-acc', () => ['--min-task-acc', `${taskFile}:0.5`]],
  ])('--heal with %s: the bound chooses on plain deletion, the written model is healed, and the report says so', async (_name, bound) => {
    const out = outDir();
    const r = await prune([...CALIB, ...EVAL, ...bound(), '--heal', 'lstsq', '--out', out, '--quiet']);
    expect(r.status).toBe(0);
    const rep = readReport(out);
    expect(rep.qualityCurve!.chosen).toBe(rep.removedLayers.length);
    expect(rep.heal!.blocks.length).toBeGreaterThan(0);
    expect(r.out).toContain('the curve is of plain deletion, layers skipped; the written model is then healed');
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toContain('The curve is of plain deletion; the written model is then healed');
    // The bound alone chose the count: nothing was asked for.
    expect(rep.request.remove).toBeNull();
    expect(rep.request.ratio).toBeNull();
  });

  it('a bound records what was asked (the --remove cap) apart from the count it chose, in report.json, report.md and the model card', async () => {
    const out = outDir();
    const r = await prune([...CALIB, ...EVAL, '--max-ppl-increase', '150%', '--remove', '3', '--out', out, '--quiet']);
    expect(r.status).toBe(0);
    const rep = readReport(out);
    expect(rep.request.remove).toBe(3);
    expect(rep.qualityCurve!.points.length - 1).toBe(3);
    const chosen = rep.qualityCurve!.chosen;
    expect(chosen).toBe(rep.removedLayers.length);
    expect(chosen).toBeLessThan(3);
    const line = `how many by the quality bound (perplexity rise <= 150.0%): ${chosen} layer${chosen === 1 ? '' : 's'}, the largest cut within it of 1..3 measured, at most --remove 3`;
    for (const file of ['report.md', 'README.md']) expect(fs.readFileSync(path.join(out, file), 'utf8')).toContain(line);
  });

  it('--bootstrap with a bound: the chosen-again probability is of the cut the bound chose, not of the largest considered', async () => {
    const r = await prune([...CALIB, ...EVAL, '--max-ppl-increase', '150%', '--bootstrap', '20', '--dry-run', '--json', '--quiet']);
    expect(r.status).toBe(0);
    const rep = JSON.parse(r.out) as PruneReport;
    expect(rep.qualityCurve!.points.length - 1).toBe(4);
    expect(rep.bootstrap!.chosen!.layers).toEqual(rep.removedLayers);
    expect(rep.removedLayers.length).toBe(rep.qualityCurve!.chosen);
  });

  it('--scores with a bound, and with --eval: the merged scores choose, the held-out data measures', async () => {
    const bounded = await prune(['--scores', scoresFile, ...EVAL, '--max-calib-tokens', '4096', '--max-kl', '1', '--dry-run', '--json', '--quiet']);
    expect(bounded.status).toBe(0);
    const b = JSON.parse(bounded.out) as PruneReport;
    expect(b.qualityCurve!.chosen).toBe(b.removedLayers.length);
    expect(b.removedLayers.length).toBeGreaterThan(0);
    const out = outDir();
    const withEval = await prune(['--scores', scoresFile, ...EVAL, '--max-calib-tokens', '4096', '--remove', '1', '--out', out, '--quiet']);
    expect(withEval.status).toBe(0);
    const e = readReport(out);
    // The lowest merged score goes; the same data, windows and engine give the same choice as scoring here.
    expect(e.removedLayers).toEqual([b.qualityCurve!.points[1].layers[0]]);
    expect(e.perplexity!.after).toBeGreaterThan(e.perplexity!.before);
  });

  it('--precision bf16 with --heal and with a bound', async () => {
    const out = outDir();
    const healed = await prune([...CALIB, ...EVAL, '--precision', 'bf16', '--heal', 'lstsq', '--remove', '1', '--out', out, '--quiet']);
    expect(healed.status).toBe(0);
    const rep = readReport(out);
    expect(rep.heal!.blocks[0].relativeResidual!).toBeLessThan(rep.heal!.blocks[0].plainResidual!);
    const bounded = await prune([...CALIB, ...EVAL, '--precision', 'bf16', '--max-kl', '1', '--dry-run', '--json', '--quiet']);
    expect(bounded.status).toBe(0);
    const b = JSON.parse(bounded.out) as PruneReport;
    expect(b.qualityCurve!.chosen).toBe(b.removedLayers.length);
  });
});
