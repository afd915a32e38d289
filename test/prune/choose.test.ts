/**
 * chooseLayers / resolveRequest: the request checks every strategy relies on, and the one-shot
 * choice against an independent brute force (every subset of N eligible layers; the chosen one
 * has the least total score).
 */
import { chooseLayers, parseMetric, parseStrategy, resolveRequest } from '../../lib/prune/choose';
import { chooseBlock, meanAngularDistance } from '../../lib/prune/strategies/block';
import { spreadBoundaries } from '../../lib/prune/strategies/iterative';
import type { MetricScores } from '../../lib/report/types';

const s = (bi: number, angular = bi, relmag = bi): MetricScores => ({ bi, angular, relmag });

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('resolveRequest', () => {
  it('takes --remove as a count and --ratio rounded to the nearest layer', () => {
    expect(resolveRequest(32, { remove: 9 }).count).toBe(9);
    expect(resolveRequest(32, { ratio: 0.27 }).count).toBe(9); // the paper's 27% of Llama-2-7B
    expect(resolveRequest(5, { ratio: 0.2 }).count).toBe(1);
    expect(resolveRequest(8, { remove: 2, keepFirst: 1, keepLast: 2 }).eligible).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses both, neither, zero, all layers, and counts the protected layers leave no room for', () => {
    expect(code(() => resolveRequest(5, { remove: 1, ratio: 0.2 }))).toBe('ERR_REMOVE_OPTIONS');
    expect(code(() => resolveRequest(5, {}))).toBe('ERR_REMOVE_OPTIONS');
    expect(code(() => resolveRequest(5, { remove: 0 }))).toBe('ERR_REMOVE_COUNT');
    expect(code(() => resolveRequest(5, { remove: 5 }))).toBe('ERR_REMOVE_COUNT');
    expect(code(() => resolveRequest(5, { remove: 1.5 }))).toBe('ERR_REMOVE_COUNT');
    expect(code(() => resolveRequest(5, { ratio: 1 }))).toBe('ERR_REMOVE_COUNT');
    expect(code(() => resolveRequest(5, { ratio: 0.05 }))).toBe('ERR_REMOVE_COUNT'); // rounds to 0
    expect(code(() => resolveRequest(5, { remove: 3, keepFirst: 2, keepLast: 1 }))).toBe('ERR_KEEP_RANGE');
    expect(code(() => resolveRequest(5, { remove: 1, keepFirst: -1 }))).toBe('ERR_KEEP_RANGE');
    expect(resolveRequest(5, { remove: 2, keepFirst: 2, keepLast: 1 }).eligible).toEqual([2, 3]);
  });

  it('names the options in its messages', () => {
    expect(() => resolveRequest(5, { remove: 5 })).toThrow(/5 layers.*at least one must remain/);
    expect(() => resolveRequest(5, { remove: 3, keepFirst: 2, keepLast: 1 })).toThrow(/--keep-first 2 and --keep-last 1.*only 2 may be removed/);
    expect(() => parseMetric('cosine')).toThrow(/unknown metric 'cosine': expected one of bi, angular, relmag/);
    expect(code(() => parseStrategy('greedy'))).toBe('ERR_STRATEGY');
  });
});

describe('chooseLayers (one-shot)', () => {
  it('removes the lowest-scored eligible layers, by the metric asked for', () => {
    const scores = [s(0.9, 0.1, 0.5), s(0.2, 0.8, 0.4), s(0.1, 0.7, 0.3), s(0.3, 0.2, 0.6), s(0.5, 0.9, 0.1)];
    expect(chooseLayers(scores, { remove: 2 }).removed).toEqual([1, 2]);
    expect(chooseLayers(scores, { remove: 2, metric: 'angular' }).removed).toEqual([0, 3]);
    expect(chooseLayers(scores, { remove: 2, metric: 'relmag' }).removed).toEqual([2, 4]);
    expect(chooseLayers(scores, { remove: 2, metric: 'angular', keepFirst: 1 }).removed).toEqual([2, 3]);
    expect(chooseLayers(scores, { remove: 1, keepLast: 3 }).removed).toEqual([1]);
  });

  it('puts NaN scores last and breaks ties by index', () => {
    const scores = [s(Number.NaN), s(0.5), s(0.5), s(0.1)];
    expect(chooseLayers(scores, { remove: 2 }).removed).toEqual([1, 3]);
    expect(chooseLayers(scores, { remove: 3 }).removed).toEqual([1, 2, 3]);
  });

  it('agrees with a brute force over every subset (random scores)', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 50; trial++) {
      const n = 3 + (trial % 6);
      const scores = Array.from({ length: n }, () => s(rand()));
      const keepFirst = trial % 2;
      const keepLast = trial % 3 === 0 ? 1 : 0;
      const count = 1 + (trial % Math.max(1, n - keepFirst - keepLast - 1));
      if (count > n - keepFirst - keepLast || count >= n) continue;
      const got = chooseLayers(scores, { remove: count, keepFirst, keepLast }).removed;
      let best = Infinity;
      for (let mask = 0; mask < 1 << n; mask++) {
        const set = [...Array(n).keys()].filter((i) => mask & (1 << i));
        if (set.length !== count || set.some((i) => i < keepFirst || i >= n - keepLast)) continue;
        best = Math.min(best, set.reduce((a, i) => a + scores[i].bi, 0));
      }
      expect(got.reduce((a, i) => a + scores[i].bi, 0)).toBeCloseTo(best, 12);
    }
  });

  it('explains each choice', () => {
    const c = chooseLayers([s(0.3), s(0.1), s(0.2)], { remove: 1 });
    expect(c.reasons[1]).toMatch(/Block Influence 0\.1000: the 1st lowest/);
  });
});

describe('block strategy (Gromov et al. 2024)', () => {
  /** Last-token states of 2 sequences, hidden 2: the stream before layer l is given directly. */
  function states(before: number[][][]): Parameters<typeof chooseBlock>[0] {
    const entries = before.length;
    const data = new Float32Array(entries * 2 * 2);
    before.forEach((seqs, e) => seqs.forEach((v, sIdx) => data.set(v, (e * 2 + sIdx) * 2)));
    return { sequences: 2, hiddenSize: 2, layers: [...Array(entries).keys()].map((i) => i - 1), data };
  }

  it('measures arccos(cos)/pi averaged over sequences', () => {
    const a = new Float32Array([1, 0, 1, 0]);
    const b = new Float32Array([0, 1, 1, 0]);
    expect(meanAngularDistance(a, b, 2, 2)).toBeCloseTo((0.5 + 0) / 2, 12);
    expect(meanAngularDistance(new Float32Array([0, 0]), new Float32Array([1, 0]), 1, 2)).toBe(0.5);
  });

  it('removes the contiguous block whose input and output are closest', () => {
    // Streams before layers 0..4 (entry 4 = after the last layer). Before 1 and before 3 point the same way.
    const st = states([
      [[1, 0], [1, 0]],
      [[0, 1], [0, 1]],
      [[1, 1], [1, 1]],
      [[0, 2], [0, 3]],
      [[1, 0], [1, 0]],
    ]);
    const req = resolveRequest(4, { remove: 2 });
    const r = chooseBlock(st, req);
    expect(r.removed).toEqual([1, 2]);
    expect(r.block).toMatchObject({ start: 1, end: 3, distance: 0 });
    expect(Object.keys(r.block?.candidates ?? {})).toEqual(['0', '1', '2']);
    // With layer 1 protected the block must start at 2 or later.
    expect(chooseBlock(st, resolveRequest(4, { remove: 2, keepFirst: 2 })).removed).toEqual([2, 3]);
  });
});

describe('spreadBoundaries', () => {
  it('keeps all when the budget allows, else an even spread', () => {
    expect(spreadBoundaries([1, 2, 3, 4], 9)).toEqual([1, 2, 3, 4]);
    expect(spreadBoundaries([1, 2, 3, 4, 5, 6, 7], 1)).toEqual([4]);
    expect(spreadBoundaries([1, 2, 3], 0)).toEqual([]);
  });
});
