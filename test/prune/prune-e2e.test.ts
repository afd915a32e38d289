/**
 * The library's prune() end to end on the real stories260k model and TinyStories text:
 * - it removes the lowest-BI layer of the golden ranking;
 * - the written model's perplexity equals the source's with that layer skipped (the report's
 *   "after"), and on the golden windows equals the golden float64 perplexitySkipping;
 * - the output holds report.json, report.md and chart.svg; a dry run and a failed run write nothing;
 * - iterative and block produce models that load and evaluate.
 * Seeded samples of the text keep each run to a few seconds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { perplexity } from '../../lib/eval/perplexity';
import { loadWindows } from '../../lib/prune/calibration';
import { prune, type PruneOptions } from '../../lib/prune/prune';
import type { PruneReport } from '../../lib/report/types';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { GOLDEN_PERPLEXITY_REL_TOL, loadGolden, loadGoldenTokens } from '../helpers/golden';

const text = tinyStoriesText;
const golden = loadGolden();
const goldenTokens = loadGoldenTokens();
const goldenOrder = [...golden.layers].sort((a, b) => a.bi - b.bi).map((l) => l.layer);
const base: PruneOptions = { calib: text, samples: 24, seed: 0, eval: text, evalOptions: { samples: 16, seed: 1 }, threads: 2 };

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-prune-e2e-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('prune --remove 1 (one-shot, BI)', () => {
  it('removes the golden lowest-BI layer and writes a model whose perplexity is the source\'s with it skipped', async () => {
    const out = path.join(tmp, 'one-shot');
    const r = await prune(stories260kDir, { ...base, remove: 1, out });
    expect(r.plan.removed).toEqual([goldenOrder[0]]);
    // The report's scores agree with the golden ranking on this sample too.
    expect([...r.report.layers].sort((a, b) => a.rank - b.rank).map((l) => l.layer).slice(0, 2)).toEqual(goldenOrder.slice(0, 2));

    const files = fs.readdirSync(out).sort();
    expect(files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'report.json', 'report.md', 'chart.svg']));
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as PruneReport;
    expect(report.removedLayers).toEqual([goldenOrder[0]]);
    expect(report.model.numLayersAfter).toBe(4);
    expect(report.perplexity?.after).toBe(r.perplexity?.after.perplexity);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/chart\.svg/);

    // The written model, evaluated on the same held-out windows, has the perplexity the report says.
    const pruned = await openCheckpoint(out);
    expect(pruned.config.numHiddenLayers).toBe(4);
    const held = await loadWindows(pruned, text, { samples: 16, seed: 1 }, 'eval');
    const after = await perplexity(pruned, held.batches[0], { threads: 2 });
    expect(Math.abs(after.perplexity / (r.perplexity?.after.perplexity as number) - 1)).toBeLessThan(1e-12);
    const before = await perplexity(stories260kDir, held.batches[0], { threads: 2 });
    expect(before.perplexity).toBe(r.perplexity?.before.perplexity);
    expect(r.perplexity!.after.perplexity).toBeGreaterThan(r.perplexity!.before.perplexity);

    // On the golden windows, against the independent float64 reference.
    const onGolden = await perplexity(pruned, goldenTokens, { threads: 2 });
    const want = golden.perplexitySkipping[String(goldenOrder[0])];
    expect(Math.abs(onGolden.perplexity / want - 1)).toBeLessThan(GOLDEN_PERPLEXITY_REL_TOL);
  });

  it('a dry run chooses the same layer and writes nothing', async () => {
    const out = path.join(tmp, 'dry');
    const r = await prune(stories260kDir, { ...base, remove: 1, out, dryRun: true });
    expect(r.plan.removed).toEqual([goldenOrder[0]]);
    expect(r.outDir).toBeNull();
    expect(r.perplexity).toBeNull();
    expect(r.plan.parameters.saved).toBe(r.plan.parameters.before - r.plan.parameters.after);
    expect(r.plan.parameters.saved).toBe(64 * 64 * 2 + 64 * 32 * 2 + 64 * 172 * 3 + 64 * 2); // one stories260k layer
    expect(r.plan.mergekit).toEqual([{ layer_range: [0, goldenOrder[0]] }, { layer_range: [goldenOrder[0] + 1, 5] }]);
    expect(r.plan.llamaCppPruneLayers).toEqual([goldenOrder[0]]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('refuses impossible requests before writing anything', async () => {
    const out = path.join(tmp, 'refused');
    await expect(prune(stories260kDir, { ...base, remove: 5, out })).rejects.toMatchObject({ code: 'ERR_REMOVE_COUNT' });
    await expect(prune(stories260kDir, { ...base, remove: 2, keepFirst: 2, keepLast: 2, out })).rejects.toMatchObject({ code: 'ERR_KEEP_RANGE' });
    await expect(prune(stories260kDir, { ...base, calib: path.join(tmp, 'nope.txt'), remove: 1, out })).rejects.toMatchObject({ code: 'ERR_DATA_MISSING' });
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('refused'))).toEqual([]);
  });
});

describe.each(['iterative', 'block'] as const)('prune --strategy %s', (strategy) => {
  it('writes a model that loads and evaluates, with the strategy in its report', async () => {
    const out = path.join(tmp, strategy);
    const r = await prune(stories260kDir, { ...base, remove: 2, strategy, out });
    expect(r.plan.removed).toHaveLength(2);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as PruneReport;
    expect(report.strategy).toBe(strategy);
    if (strategy === 'iterative') expect(report.iterations).toHaveLength(2);
    if (strategy === 'block') expect(report.block?.end).toBe((report.block?.start as number) + 2);
    const pruned = await openCheckpoint(out);
    expect(pruned.config.numHiddenLayers).toBe(3);
    const ppl = await perplexity(pruned, goldenTokens.slice(0, 4), { threads: 2 });
    expect(Number.isFinite(ppl.perplexity)).toBe(true);
    const skipped = await perplexity(stories260kDir, goldenTokens.slice(0, 4), { threads: 2, skipLayers: r.plan.removed });
    expect(Math.abs(ppl.perplexity / skipped.perplexity - 1)).toBeLessThan(1e-12);
  });
});

describe('prune --calib through the CLI', () => {
  it('--dry-run prints the plan (layers, parameters and bytes saved, mergekit and llama.cpp cuts) and writes nothing', async () => {
    const { main } = await import('../../lib/cli/main');
    const { capture } = await import('../helpers/io');
    const out = path.join(tmp, 'cli-dry');
    const args = ['prune', stories260kDir, '--calib', text, '--samples', '16', '--remove', '1', '--dry-run', '--out', out, '--threads', '2'];
    const io = capture();
    expect(await main(args, io)).toBe(0);
    expect(io.out()).toMatch(/remove layers \(0-based\): 2 {2}\(5 -> 4 layers\)/);
    expect(io.out()).toMatch(/parameters: 260,032 -> 214,592 \(45,440 saved, 17\.5%\)/);
    expect(io.out()).toMatch(/mergekit layer_range slices: \[0, 2\], \[3, 5\]/);
    expect(io.out()).toMatch(/llama-quantize --prune-layers 2\n/);
    expect(io.out()).toMatch(/dry run: nothing written/);

    const json = capture();
    expect(await main([...args, '--json'], json)).toBe(0);
    const doc = JSON.parse(json.out()) as PruneReport;
    expect(doc.dryRun).toBe(true);
    expect(doc.removedLayers).toEqual([2]);
    expect(doc.cut).toEqual({ mergekit: [{ layer_range: [0, 2] }, { layer_range: [3, 5] }], mergekitDtype: 'float32', llamaCppPruneLayers: [2] });
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('cancellation', () => {
  it('an abort during scoring rejects with ERR_ABORTED and writes nothing', async () => {
    const out = path.join(tmp, 'aborted');
    const controller = new AbortController();
    const run = prune(stories260kDir, {
      ...base, remove: 1, out, signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'score') controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('aborted'))).toEqual([]);
  });
});
