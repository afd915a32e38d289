/**
 * The job's progress covers this round's phases too: a quality bound's curve ('eval-curve'), the
 * heal pass ('heal') and the healed model's perplexity ('eval-healed') are planned phases of the
 * job tracker, so the whole-job percentage keeps moving through them instead of pausing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { curveLayerRuns, JobTracker, phaseId, prunePhases } from '../../lib/prune/jobProgress';
import { healPassLayers } from '../../lib/prune/heal';
import { prune } from '../../lib/prune/prune';
import type { WorkProgress } from '../../lib/prune/strategies/passes';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';

describe('prunePhases', () => {
  it('plans the curve, the heal pass and the healed perplexity in the order prune runs them', () => {
    const job = { numLayers: 5, iterative: false, count: 2, evaluate: true, writeBytes: 100, curve: 4, healLayers: 4 };
    expect(prunePhases(job, 1000, 300)).toEqual([
      { id: 'tokenize', kind: 'tokenize', units: 0 },
      { id: 'tokenize-eval', kind: 'tokenize', units: 0 },
      { id: 'score', kind: 'compute', units: 5000 },
      // dense 5 + cuts of 1..4 layers at most 4 + 3 + 2 + 1 layers each = 15 layer runs per token
      { id: 'eval-curve', kind: 'compute', units: 300 * 15 },
      { id: 'heal', kind: 'compute', units: 4000 },
      { id: 'eval-before', kind: 'compute', units: 1500 },
      { id: 'eval-after', kind: 'compute', units: 900 },
      { id: 'eval-healed', kind: 'compute', units: 900 },
      { id: 'rewrite', kind: 'write', units: 100 },
    ]);
    expect(curveLayerRuns(5, 4)).toBe(15);
    // A bounded dry run still reads (and tokenizes) the held-out data for its curve.
    expect(prunePhases({ ...job, evaluate: false, writeBytes: 0, healLayers: 0 }, 1000, 300).map((p) => p.id)).toEqual(['tokenize', 'tokenize-eval', 'score', 'eval-curve']);
  });

  it('counts the heal pass up to the last removed layer that has a layer before its block', () => {
    expect(healPassLayers([2, 3])).toBe(4);
    expect(healPassLayers([1, 4])).toBe(5);
    expect(healPassLayers([0, 1])).toBe(0); // the block starts at layer 0: nothing to patch, no pass
    expect(healPassLayers([0, 2])).toBe(3);
  });
});

describe('a bounded, healed prune with --eval', () => {
  const events: WorkProgress[] = [];
  let removed: number[] = [];
  beforeAll(async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-progress-phases-'));
    try {
      ({ plan: { removed } } = await prune(stories260kDir, {
        calib: tinyStoriesText, eval: tinyStoriesText, samples: 12, seqLen: 64, batchTokens: 256, evalOptions: { maxCalibTokens: 2048 },
        qualityBound: { maxPplIncrease: 100 }, heal: 'lstsq', threads: 1, out: path.join(out, 'pruned'), onProgress: (e) => events.push(e),
      }));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('reports the curve, heal and healed-perplexity phases in the plan, and the job percentage moves through each', () => {
    const ids = events.map(phaseId).filter((id, i, all) => i === 0 || all[i - 1] !== id);
    expect(ids).toEqual(['tokenize', 'tokenize-eval', 'score', 'eval-curve', 'heal', 'eval-before', 'eval-after', 'eval-healed', 'rewrite']);
    let prev: WorkProgress | undefined;
    for (const e of events) {
      expect(e.workDone).toBeLessThanOrEqual(e.workTotal);
      if (prev) expect(e.job!.fraction).toBeGreaterThanOrEqual(prev.job!.fraction);
      prev = e;
    }
    expect(prev!.job!.fraction).toBe(1);
    for (const id of ['eval-curve', 'heal', 'eval-healed']) {
      const mine = events.filter((e) => e.phase === id);
      expect(mine.length).toBeGreaterThan(2);
      expect(mine[mine.length - 1].workDone).toBe(mine[mine.length - 1].workTotal);
    }
  });

  it('replayed at a steady speed through the plan prune makes, the percentage rises inside each new phase', () => {
    // The live fraction is held at its highest and tracks measured speed, which on a 260k-parameter
    // model is mostly overhead; replayed at one second per unit of work it must move in every
    // planned phase (an event outside the plan changes nothing, so an unplanned phase stays flat).
    const total = (id: string): number => events.filter((e) => phaseId(e) === id).reduce((n, e) => Math.max(n, e.workTotal), 0);
    // --max-ppl-increase 100: every count up to 4 of the 5 layers is a candidate.
    const job = { numLayers: 5, iterative: false, count: removed.length, evaluate: true, writeBytes: total('rewrite'), curve: 4, healLayers: healPassLayers(removed) };
    let now = 0;
    const tracker = new JobTracker(prunePhases(job, total('score') / 5, total('eval-before') / 5), { tokenize: 1, compute: 1, write: 1 }, () => now);
    let last = 0;
    const seen = new Map<string, number[]>();
    for (const e of events) {
      now += Math.max(0, e.workDone - last);
      last = e.workDone;
      if (!tracker.report(phaseId(e), e.workDone, e.workTotal)) continue;
      seen.set(e.phase, [...(seen.get(e.phase) ?? []), tracker.status().fraction]);
    }
    for (const id of ['eval-curve', 'heal', 'eval-healed']) {
      const f = seen.get(id)!;
      expect(f[f.length - 1]).toBeGreaterThan(f[0]);
    }
  });
});
