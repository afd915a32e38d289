/**
 * Choosing how much to cut by a quality bound: parsing, the choice on constructed curves (a
 * property test), the measured curve against independent comparisons of each cut, and
 * `prune --max-ppl-increase / --max-kl` end to end (report.json curve, report.md table,
 * quality.svg with the chosen point marked, --dry-run printing the curve, refusals).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { compareModels } from '../../lib/eval/compare';
import { evaluateTasks, loadTaskFile } from '../../lib/eval/tasks';
import { chooseByBound, parseFraction, parseTaskBound, withinBounds, type CurvePoint, type QualityBounds } from '../../lib/prune/qualityBound';
import { keptBoundaries, measureCurve } from '../../lib/prune/qualityBoundSweep';
import { mulberry32 } from '../../lib/util/prng';
import { loadGoldenTokens } from '../helpers/golden';
import { repoRoot, stories260kDir, tinyStoriesText } from '../helpers/paths';

const CLI = path.join(__dirname, 'helpers', 'cli.js');
const golden = loadGoldenTokens();
let root: string;
let stories: Checkpoint;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-bound-'));
  stories = await openCheckpoint(stories260kDir);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('parsing', () => {
  test('fractions: 25% and 0.25 are the same; junk is ERR_BOUND naming the option', () => {
    expect(parseFraction('25%', '--max-ppl-increase')).toBe(0.25);
    expect(parseFraction('0.25', '--max-ppl-increase')).toBe(0.25);
    expect(parseFraction('150%', '--max-ppl-increase')).toBe(1.5);
    for (const bad of ['', '-5%', 'abc', '25%%', 'NaN', '1e999']) {
      expect(() => parseFraction(bad, '--max-ppl-increase')).toThrow(expect.objectContaining({ code: 'ERR_BOUND', message: expect.stringContaining('--max-ppl-increase') }));
    }
    expect(() => parseFraction('1.5', '--min-task-acc', { max: 1 })).toThrow(/between 0 and 1/);
  });

  test('--min-task-acc FILE:ACC splits at the last colon (paths may hold colons)', () => {
    expect(parseTaskBound('tasks/a.jsonl:0.9')).toEqual({ file: 'tasks/a.jsonl', minAcc: 0.9 });
    expect(parseTaskBound('C:/x/a.jsonl:90%')).toEqual({ file: 'C:/x/a.jsonl', minAcc: 0.9 });
    for (const bad of ['a.jsonl', ':0.9', 'a.jsonl:']) expect(() => parseTaskBound(bad)).toThrow(expect.objectContaining({ code: 'ERR_BOUND' }));
  });
});

describe('the choice', () => {
  test('property: the chosen count is the largest k whose point meets every bound (curves need not be monotone)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = mulberry32(seed); // seeded, so a failure reproduces
      const n = 1 + Math.floor(r() * 12);
      const bounds: QualityBounds = {};
      if (r() < 0.7) bounds.maxPplIncrease = r();
      if (r() < 0.5) bounds.maxKl = r() * 0.5;
      if (r() < 0.3) bounds.minTaskAcc = { file: 't.jsonl', minAcc: 0.5 + r() * 0.4 };
      const points: CurvePoint[] = [];
      for (let k = 0; k <= n; k++) {
        const rise = k === 0 ? 0 : r() * 1.2 * k / n;
        const p = { count: k, layers: [], perplexity: 10 * (1 + rise), pplIncrease: rise, kl: { mean: k === 0 ? 0 : r() * 0.6, p95: 1 }, top1Agreement: 1, taskAcc: k === 0 ? 0.95 : r() };
        points.push({ ...p, withinBound: withinBounds(p, bounds) });
      }
      // Independent: scan from the largest count down, checking each bound directly.
      let expected = 0;
      for (let k = n; k >= 1; k--) {
        const p = points[k];
        const ok = (bounds.maxPplIncrease === undefined || p.pplIncrease <= bounds.maxPplIncrease)
          && (bounds.maxKl === undefined || p.kl.mean <= bounds.maxKl)
          && (bounds.minTaskAcc === undefined || (p.taskAcc as number) >= bounds.minTaskAcc.minAcc);
        if (ok) {
          expected = k;
          break;
        }
      }
      expect(chooseByBound(points)).toBe(expected);
    }
  });

  test('snapshots are kept for the deepest boundaries first, within the budget', () => {
    const cuts = [[4], [4, 3], [4, 3, 1], [4, 3, 1, 0]];
    expect([...keptBoundaries(cuts, 100, 1000)].sort()).toEqual([0, 1, 3, 4]);
    expect([...keptBoundaries(cuts, 100, 250)].sort()).toEqual([3, 4]);
    expect([...keptBoundaries(cuts, 100, 50)]).toEqual([]);
  });
});

describe('the measured curve', () => {
  const seqs = golden.slice(0, 6);
  const cuts = [[2], [2, 3], [1, 2, 3]];

  test('each point equals an independent comparison of that cut run from the start (to 1e-12: two batches vs one session), with or without snapshots', async () => {
    const batches = [seqs.slice(0, 4).map((s) => Int32Array.from(s)), seqs.slice(4).map((s) => Int32Array.from(s))];
    const withSnaps = await measureCurve(stories, batches, cuts, { maxPplIncrease: 1 }, { engine: { threads: 2 } });
    const noSnaps = await measureCurve(stories, batches, cuts, { maxPplIncrease: 1 }, { engine: { threads: 2 }, snapshotBudgetBytes: 0 });
    expect(noSnaps).toEqual(withSnaps);
    expect(withSnaps.points.map((p) => p.count)).toEqual([0, 1, 2, 3]);
    expect(withSnaps.points[0]).toMatchObject({ pplIncrease: 0, kl: { mean: 0, p95: 0 }, top1Agreement: 1, withinBound: true });
    for (let k = 0; k < cuts.length; k++) {
      // compareModels pools over one session; the curve over two batches: the same per-batch
      // sums, so KL and agreement are equal up to the order of addition.
      const one = await compareModels(stories, stories, seqs, { threads: 2, skipLayers: cuts[k] });
      const p = withSnaps.points[k + 1];
      expect(p.layers).toEqual([...cuts[k]].sort((a, b) => a - b));
      expect(p.kl.mean).toBeCloseTo(one.kl.mean, 12);
      expect(p.kl.p95).toBe(one.kl.p95);
      expect(p.top1Agreement).toBe(one.top1Agreement);
      expect(p.perplexity / one.perplexity.candidate - 1).toBeCloseTo(0, 12);
      expect(p.withinBound).toBe(p.pplIncrease <= 1);
    }
    expect(withSnaps.chosen).toBe(withSnaps.points.filter((p) => p.withinBound).reduce((m, p) => Math.max(m, p.count), 0));
  });
});

describe('a task-accuracy bound', () => {
  test('each point\'s task accuracy is evaluateTasks\' with that cut skipped; the bound applies to it', async () => {
    const file = path.join(root, 'small-task.jsonl');
    const lines = fs.readFileSync(path.join(repoRoot, 'assets', 'tasks', 'tinystories-next-sentence.jsonl'), 'utf8').split('\n').filter((l) => l.trim());
    fs.writeFileSync(file, `${lines.slice(0, 16).join('\n')}\n`);
    const cuts = [[2], [2, 3]];
    const batches = [golden.slice(0, 2).map((x) => Int32Array.from(x))];
    const task = await loadTaskFile(file);
    const accs = [];
    for (const skip of [[], ...cuts]) accs.push((await evaluateTasks(stories, [task], { threads: 2, skipLayers: skip }))[0].acc);
    const minAcc = accs[1] - 1e-9;  // layer 2 alone meets it exactly
    const c = await measureCurve(stories, batches, cuts, { minTaskAcc: { file, minAcc } }, { engine: { threads: 2 } });
    expect(c.points.map((p) => p.taskAcc)).toEqual(accs);
    expect(c.points.map((p) => p.withinBound)).toEqual(accs.map((a) => a >= minAcc));
    expect(c.chosen).toBe(accs[2] >= minAcc ? 2 : 1);
  });
});

describe('prune with a bound (CLI)', () => {
  const base = [stories260kDir, '--calib', tinyStoriesText, '--samples', '24', '--eval', tinyStoriesText, '--max-calib-tokens', '4096', '--threads', '2'];
  function cli(args: string[]) {
    return spawnSync(process.execPath, [CLI, 'prune', ...args], { encoding: 'utf8', timeout: 180_000 });
  }

  test('--max-ppl-increase 200%: the largest cut within it is written; report.json/report.md/quality.svg hold the curve', () => {
    const out = path.join(root, 'bounded');
    const run = cli([...base, '--max-ppl-increase', '200%', '--out', out, '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    const c = report.qualityCurve;
    expect(c.bounds).toEqual({ maxPplIncrease: 2 });
    expect(c.points.map((p: CurvePoint) => p.count)).toEqual([0, 1, 2, 3, 4]);
    const within = c.points.filter((p: CurvePoint) => p.count > 0 && p.pplIncrease <= 2).map((p: CurvePoint) => p.count);
    expect(c.chosen).toBe(Math.max(0, ...within));
    expect(c.chosen).toBeGreaterThan(0);
    expect(report.removedLayers).toEqual(c.points[c.chosen].layers);
    // Nested cuts in one-shot order: each adds one layer.
    for (let k = 2; k < c.points.length; k++) expect(c.points[k].layers).toEqual(expect.arrayContaining(c.points[k - 1].layers));
    // prune --eval's own numbers agree with the curve at the chosen point.
    expect(report.perplexity.after).toBe(c.points[c.chosen].perplexity);
    expect(report.perplexity.kl.mean).toBe(c.points[c.chosen].kl.mean);
    expect(report.perplexity.top1Agreement).toBe(c.points[c.chosen].top1Agreement);
    const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('## Quality curve');
    expect(md).toContain('(chosen)');
    expect(md).toContain('![Perplexity and top-1 agreement vs layers removed; chosen cut marked](quality.svg)');
    expect(md).toMatch(/Next-token agreement.*KL\(original ‖ pruned\) mean/);
    const svg = fs.readFileSync(path.join(out, 'quality.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain(`class="chosen" data-count="${c.chosen}"`);
    expect(svg).toContain('class="bound"');
  });

  test('--dry-run prints the curve and the choice, writes nothing', () => {
    const run = cli([...base, '--max-kl', '1', '--dry-run']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/quality curve on the --eval data/);
    expect(run.stdout).toMatch(/removed\s+layers\s+perplexity\s+rise\s+KL mean\s+KL p95\s+top-1\s+within/);
    expect(run.stdout).toMatch(/chosen: remove \d+ layer/);
    expect(run.stdout).toContain('dry run: nothing written');
  });

  test('--strategy block: each count\'s cut is the best block of that length (contiguous), the largest within the bound is cut', () => {
    const run = cli([...base, '--strategy', 'block', '--max-ppl-increase', '5000%', '--dry-run', '--json', '--quiet']);
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout);
    const c = report.qualityCurve;
    for (const p of c.points.slice(1)) {
      expect(p.layers).toHaveLength(p.count);
      expect(p.layers[p.layers.length - 1] - p.layers[0]).toBe(p.count - 1);
    }
    expect(c.chosen).toBe(Math.max(0, ...c.points.filter((p: CurvePoint) => p.count > 0 && p.pplIncrease <= 50).map((p: CurvePoint) => p.count)));
    expect(report.removedLayers).toEqual(c.points[c.chosen].layers);
    expect(report.block.end - report.block.start).toBe(c.chosen);
  });

  test('a bound no cut meets: ERR_BOUND_UNMET, exit 1, the curve in the message, nothing written', () => {
    const out = path.join(root, 'unmet');
    const run = cli([...base, '--max-ppl-increase', '1%', '--out', out]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('ERR_BOUND_UNMET');
    expect(run.stderr).toMatch(/0\s+-\s+\S+\s+0\.0%/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('usage errors exit 2 before reading data: bad value, no --eval, another strategy', () => {
    const model = [stories260kDir, '--calib', tinyStoriesText, '--dry-run'];
    const bad = cli([...model, '--eval', tinyStoriesText, '--max-ppl-increase', 'lots']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--max-ppl-increase takes a fraction");
    const noEval = cli([...model, '--max-kl', '0.1']);
    expect(noEval.status).toBe(2);
    expect(noEval.stderr).toContain('give --eval DATA');
    const iter = cli([...model, '--eval', tinyStoriesText, '--max-kl', '0.1', '--strategy', 'iterative']);
    expect(iter.status).toBe(2);
    expect(iter.stderr).toContain('--strategy one-shot or block');
  });
});

describe('--min-task-acc: the task file is checked before the scoring pass', () => {
  test('a malformed task file is ERR_TASK_ITEM naming it, with no layer scored and nothing written', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { prune } = require('../../lib/prune/prune') as typeof import('../../lib/prune/prune');
    const bad = path.join(root, 'bad-task.jsonl');
    fs.writeFileSync(bad, '{"context": "a", "choices": ["b", "c"], "gold": 1.5}\n');
    const out = path.join(root, 'bad-task-out');
    const phases = new Set<string>();
    await expect(prune(stories260kDir, {
      calib: [tinyStoriesText], samples: 8, seqLen: 32, eval: [tinyStoriesText], threads: 1, out,
      qualityBound: { minTaskAcc: { file: bad, minAcc: 0.5 } },
      onProgress: (p: { phase: string }) => { phases.add(p.phase); },
    } as unknown as Parameters<typeof prune>[1])).rejects.toMatchObject({ code: 'ERR_TASK_ITEM', message: expect.stringContaining(`${bad} line 1`) });
    expect([...phases].filter((p) => !p.startsWith('tokenize'))).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);
});
