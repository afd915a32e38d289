/**
 * Issue 12 §4: per-window statistic sums from the engine, and the bootstrap over windows built on
 * them. The per-window sums are checked against independent computations: they add up to the
 * pooled sums, and each equals the pooled sums of a run on that window alone (bit for bit: both
 * sum the same per-token values from the window's first token on). The bootstrap is checked on
 * constructed cases with known answers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrapLines, refuseBootstrapOn } from '../../lib/cli/bootstrapOption';
import { bootstrapMarkdown, bootstrapWarnings } from '../../lib/report/bootstrapSection';
import type { PruneReport } from '../../lib/report/types';
import { main } from '../../lib/cli/main';
import { checkBootstrapOptions } from '../../lib/prune/pruneBootstrap';
import { ShortGptError } from '../../lib/errors';
import { bootstrapScores, concatPerWindow, percentile } from '../../lib/scoring/bootstrap';
import { scoreLayers, type LayerScore } from '../../lib/scoring/scoreLayers';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { randomSequences } from '../reference/sequences';

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
const sum = (xs: Float64Array): number => xs.reduce((a, b) => a + b, 0);

describe('per-window sums from the engine (CPU)', () => {
  // 1500+ tokens: more than one engine batch (1024 tokens), a 1-token window included.
  const lengths = [300, 1, 257, 511, 64, 400, 17];
  const seqs = randomSequences(lengths, 512, 11).map((s) => Int32Array.from(s));
  let all: LayerScore[];
  beforeAll(async () => {
    all = (await scoreLayers(stories260kDir, seqs, { threads: 2 })).layers;
  });

  it('are there for every layer, one entry per window, with each window\'s token count', () => {
    for (const l of all) {
      expect(l.perWindow).toBeDefined();
      expect(Array.from(l.perWindow!.tokens)).toEqual(lengths);
    }
  });

  it('add up to the pooled sums (1e-12 relative)', () => {
    for (const l of all) {
      const w = l.perWindow!;
      expect(sum(w.tokens)).toBe(l.tokens);
      expect(sum(w.nanCount)).toBe(l.nanCount);
      expect(rel(sum(w.sumCos), l.sumCos)).toBeLessThan(1e-12);
      expect(rel(sum(w.sumAngular), l.sumAngular)).toBeLessThan(1e-12);
      expect(rel(sum(w.sumRelMag), l.sumRelMag)).toBeLessThan(1e-12);
    }
  });

  it('equal, bit for bit, the pooled sums of each window scored alone', async () => {
    for (const s of [0, 1, 3]) {
      const alone = (await scoreLayers(stories260kDir, [seqs[s]], { threads: 1 })).layers;
      alone.forEach((a, l) => {
        const w = all[l].perWindow!;
        expect([w.sumCos[s], w.sumAngular[s], w.sumRelMag[s], w.tokens[s]]).toEqual([a.sumCos, a.sumAngular, a.sumRelMag, a.tokens]);
      });
    }
  });

  it('do not depend on the thread count', async () => {
    const one = (await scoreLayers(stories260kDir, seqs, { threads: 1 })).layers;
    one.forEach((o, l) => {
      expect(o.sumCos).toBe(all[l].sumCos);
      expect(Array.from(o.perWindow!.sumCos)).toEqual(Array.from(all[l].perWindow!.sumCos));
    });
  });
});

/** Layer scores from per-window cosine sums (angular and relmag mirror them, enough here). */
function syntheticScores(perLayerWindowCos: number[][], tokensPerWindow: number[]): LayerScore[] {
  return perLayerWindowCos.map((cos, layer) => {
    const tokens = tokensPerWindow.reduce((a, b) => a + b, 0);
    const sumCos = cos.reduce((a, b) => a + b, 0);
    return {
      layer,
      tokens,
      blockInfluence: 1 - sumCos / tokens,
      angularDistance: 0,
      relativeMagnitude: 0,
      nanCount: 0,
      sumCos,
      sumAngular: 0,
      sumRelMag: 0,
      perWindow: {
        tokens: Float64Array.from(tokensPerWindow),
        sumCos: Float64Array.from(cos),
        nanCount: new Float64Array(cos.length),
        sumAngular: new Float64Array(cos.length),
        sumRelMag: new Float64Array(cos.length),
      },
    };
  });
}

describe('bootstrapScores', () => {
  it('all windows identical: probability 1 and zero-width intervals at the estimate', () => {
    const windows = 20;
    // Every window: cosine sums 8, 5, 9, 6 of 10 tokens -> BI 0.2, 0.5, 0.1, 0.4.
    const scores = syntheticScores([8, 5, 9, 6].map((c) => Array<number>(windows).fill(c)), Array<number>(windows).fill(10));
    const b = bootstrapScores(scores, { samples: 200, seed: 3, request: { remove: 2 } });
    expect(b.chosen!.layers).toEqual([0, 2]); // BI 0.2 and 0.1: the two lowest
    expect(b.chosen!.perLayer).toEqual([{ layer: 0, probability: 1 }, { layer: 2, probability: 1 }]);
    expect(b.chosen!.sameSet).toBe(1);
    for (const l of b.layers) {
      expect(l.low).toBe(l.estimate);
      expect(l.high).toBe(l.estimate);
    }
  });

  it('a choice that depends on the windows: the known probability 3/4', () => {
    // Two windows of 10 tokens. Layer 0: cosine sums 9 and 1; layer 1: 5 and 5. Pooled, both BI
    // 0.5 (a tie: the lower index, layer 0, is chosen). Resampled: both draws window 0 (p 1/4) ->
    // layer 0; both window 1 (1/4) -> layer 1; one of each (1/2) -> the tie again -> layer 0.
    const scores = syntheticScores([[9, 1], [5, 5]], [10, 10]);
    const b = bootstrapScores(scores, { samples: 4000, seed: 1, request: { remove: 1 } });
    expect(b.chosen!.layers).toEqual([0]);
    const p = b.chosen!.perLayer[0].probability;
    expect(Math.abs(p - 0.75)).toBeLessThan(4 * Math.sqrt((0.75 * 0.25) / 4000)); // 4 sigma
    // Layer 0's resampled BI is 0.1, 0.5 or 0.9 with probabilities 1/4, 1/2, 1/4.
    expect(b.layers[0].low).toBeCloseTo(0.1, 12);
    expect(b.layers[0].high).toBeCloseTo(0.9, 12);
    expect(b.layers[1].low).toBeCloseTo(0.5, 12);
    expect(b.layers[1].high).toBeCloseTo(0.5, 12);
  });

  it('is deterministic by seed, and another seed resamples differently', () => {
    const scores = syntheticScores([[9, 1, 4, 7, 3], [5, 5, 6, 2, 4], [6, 6, 6, 6, 6]], [10, 10, 10, 10, 10]);
    const a = bootstrapScores(scores, { samples: 200, seed: 42, request: { remove: 1 } });
    const again = bootstrapScores(scores, { samples: 200, seed: 42, request: { remove: 1 } });
    const other = bootstrapScores(scores, { samples: 200, seed: 43, request: { remove: 1 } });
    expect(again).toEqual(a);
    expect(other.layers.map((l) => [l.low, l.high])).not.toEqual(a.layers.map((l) => [l.low, l.high]));
  });

  it('weights windows by tokens, as the pooled score does', () => {
    // Window 1 has 3x the tokens: the estimate is the token-weighted mean, and so is each resample.
    const scores = syntheticScores([[9, 3]], [10, 30]);
    const b = bootstrapScores(scores, { samples: 50, seed: 0 });
    expect(b.layers[0].estimate).toBeCloseTo(1 - 12 / 40, 14);
    // Possible resamples: (2,0) -> 0.1, (1,1) -> 0.7, (0,2) -> 0.9.
    expect(b.layers[0].low).toBeGreaterThanOrEqual(0.1 - 1e-12);
    expect(b.layers[0].high).toBeLessThanOrEqual(0.9 + 1e-12);
  });

  it('percentile interpolates as numpy.percentile does', () => {
    // numpy.percentile([1, 2, 3, 4, 10], [2.5, 97.5]) == [1.1, 9.4]
    expect(percentile([1, 2, 3, 4, 10], 0.025)).toBeCloseTo(1.1, 12);
    expect(percentile([1, 2, 3, 4, 10], 0.975)).toBeCloseTo(9.4, 12);
  });

  it('refuses scores without per-window sums (the CUDA backend) and a bad count', () => {
    const [s] = syntheticScores([[1, 2]], [5, 5]);
    const { perWindow: _gone, ...noWindows } = s;
    expect(() => bootstrapScores([noWindows], { samples: 10 })).toThrow(ShortGptError);
    expect(() => bootstrapScores([noWindows], { samples: 10 })).toThrow(/per-window sums.*CPU backend/);
    expect(() => bootstrapScores([s], { samples: 0 })).toThrow(/positive integer/);
  });

  it('concatPerWindow keeps window order across batches', () => {
    const [a] = syntheticScores([[1, 2]], [5, 6]);
    const [b] = syntheticScores([[3]], [7]);
    const c = concatPerWindow(a.perWindow, b.perWindow)!;
    expect(Array.from(c.sumCos)).toEqual([1, 2, 3]);
    expect(Array.from(c.tokens)).toEqual([5, 6, 7]);
    expect(concatPerWindow(a.perWindow, undefined)).toBeUndefined();
  });
});

describe('what reports say about an unstable choice', () => {
  // The 3/4 case above: layer 0 chosen in ~75% of resamples, under the 0.9 line.
  const b = bootstrapScores(syntheticScores([[9, 1], [5, 5]], [10, 10]), { samples: 400, seed: 1, request: { remove: 1 } });
  const report = { bootstrap: b } as unknown as PruneReport;

  it('report.md: a summary warning to add calibration data, and the layer flagged in the Stability table', () => {
    expect(bootstrapWarnings(report)).toEqual([expect.stringMatching(/^layer 0 was chosen again in only 7\d\.\d% of 400 bootstrap resamples.*add calibration data/)]);
    const md = bootstrapMarkdown(report).join('\n');
    expect(md).toMatch(/\| 0 \| 0\.5000\d* \| \[0\.1000\d*, 0\.9000\d*\] \| 7\d\.\d% ⚠ \|/);
    expect(md).toMatch(/\| 1 \| [^|]+ \| [^|]+ \| — \|/);
  });

  it('the CLI text: probabilities and the same warning', () => {
    const text = bootstrapLines(b).join('\n');
    expect(text).toMatch(/chosen again in a resample: layer 0 7\d\.\d%; the same set 7\d\.\d%/);
    expect(text).toMatch(/warning: layer 0 chosen in under 90% of resamples.*add calibration data/);
  });

  it('a stable choice gets no warning', () => {
    const stable = bootstrapScores(syntheticScores([[9, 9], [5, 5]], [10, 10]), { samples: 50, request: { remove: 1 } });
    expect(bootstrapWarnings({ bootstrap: stable } as unknown as PruneReport)).toEqual([]);
    expect(bootstrapLines(stable).join('\n')).not.toMatch(/warning/);
  });
});

describe('--bootstrap on the CLI', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-bootstrap-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('score --bootstrap --json: an interval per layer around its BI; the same seed gives the same document', async () => {
    // --batch-tokens 2000: the 24 windows run in several batches, whose per-window sums are concatenated.
    const args = ['score', stories260kDir, '--calib', tinyStoriesText, '--samples', '24', '--batch-tokens', '2000', '--bootstrap', '50', '--seed', '5', '--json', '--threads', '2'];
    const io = capture();
    expect(await main(args, io)).toBe(0);
    const doc = JSON.parse(io.out());
    expect(doc.bootstrap).toMatchObject({ samples: 50, seed: 5, windows: 24, metric: 'bi', confidence: 0.95 });
    doc.layers.forEach((l: { layer: number; bi: number }, i: number) => {
      const b = doc.bootstrap.layers[i];
      expect(b.layer).toBe(l.layer);
      expect(b.estimate).toBeCloseTo(l.bi, 12);
      expect(b.low).toBeLessThanOrEqual(b.high);
    });
    const again = capture();
    await main(args, again);
    expect(JSON.parse(again.out()).bootstrap).toEqual(doc.bootstrap);
  });

  it('prune --bootstrap: the chosen layer\'s probability in report.json and a Stability section in report.md', async () => {
    const out = path.join(tmp, 'pruned');
    const io = capture();
    const code = await main(['prune', stories260kDir, '--calib', tinyStoriesText, '--samples', '24', '--remove', '1', '--bootstrap', '40', '--out', out, '--json', '--quiet', '--threads', '2'], io);
    expect(code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.bootstrap.chosen.layers).toEqual(report.removedLayers);
    expect(report.bootstrap.chosen.perLayer[0].probability).toBeGreaterThanOrEqual(0);
    expect(report.bootstrap.chosen.perLayer[0].probability).toBeLessThanOrEqual(1);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/## Stability \(bootstrap\)[\s\S]*40 resamples, with replacement, of the 24 calibration windows/);
  });

  it('block strategy: intervals, and a note instead of probabilities', async () => {
    const io = capture();
    expect(await main(['prune', stories260kDir, '--calib', tinyStoriesText, '--samples', '16', '--remove', '1', '--strategy', 'block', '--bootstrap', '20', '--dry-run', '--json', '--quiet', '--threads', '2'], io)).toBe(0);
    const report = JSON.parse(io.out());
    expect(report.bootstrap.chosen).toBeUndefined();
    expect(report.bootstrap.note).toMatch(/no chosen-again probability/);
    expect(report.bootstrap.layers).toHaveLength(5);
  });

  it.each([
    [['--bootstrap', '0'], /--bootstrap/],
    [['--bootstrap', 'many'], /--bootstrap/],
  ])('score %j is a usage error (exit 2)', async (extra, message) => {
    const io = capture();
    const code = await main(['score', stories260kDir, '--calib', tinyStoriesText, '--samples', '4', ...extra], io);
    expect(code).toBe(2);
    expect(io.err()).toMatch(message);
  });

  it('the CUDA backend is refused before any pass (it keeps no per-window sums)', () => {
    expect(() => refuseBootstrapOn('score', 'cuda', 10)).toThrow(/--bootstrap needs per-window sums.*--device cpu/);
    expect(() => refuseBootstrapOn('score', 'cuda', undefined)).not.toThrow();
    expect(() => checkBootstrapOptions(10, 0, 'cuda')).toThrow(ShortGptError);
  });
});
