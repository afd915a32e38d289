/**
 * The strategies on the real stories260k model and the golden token windows (6,110 tokens):
 * - iterative with N=1 is one-shot with N=1;
 * - every re-scored number equals scoring the actually rewritten model from scratch (1e-9);
 * - residual-stream snapshots change how much is recomputed, never the scores;
 * - block distances equal an independent float64 forward pass's (test/reference);
 * - batching (--batch-tokens) does not change scores.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { chooseLayers, resolveRequest } from '../../lib/prune/choose';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { chooseBlock } from '../../lib/prune/strategies/block';
import { iterative, type IterativeResult } from '../../lib/prune/strategies/iterative';
import { scoreBatches } from '../../lib/prune/strategies/passes';
import { toMetricScores } from '../../lib/report/buildReport';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { referenceHiddenStates } from '../reference/forward64';
import { stories260kDir } from '../helpers/paths';
import { loadGoldenTokens } from '../helpers/golden';

const tokens = loadGoldenTokens();
const batch = tokens.map((t) => Int32Array.from(t));
const threads = 2;

let ckpt: Checkpoint;
let tmp: string;
let twoSteps: IterativeResult;

beforeAll(async () => {
  ckpt = await openCheckpoint(stories260kDir);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-strategies-'));
  twoSteps = await iterative(ckpt, [batch], 'bi', resolveRequest(5, { remove: 2 }), { engine: { threads } });
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('iterative strategy', () => {
  it('with N=1 removes what one-shot removes, from the same full-model scores', async () => {
    const one = await iterative(ckpt, [batch], 'bi', resolveRequest(5, { remove: 1 }), { engine: { threads }, snapshotBudgetBytes: 0 });
    const full = await scoreLayers(ckpt, batch, { threads });
    expect(one.initial).toEqual(full.layers);
    expect(one.removed).toEqual(chooseLayers(full.layers.map(toMetricScores), { remove: 1 }).removed);
    expect(one.removed).toEqual([2]); // the golden BI ranking's lowest layer
  });

  it('re-scores each shortened model exactly as scoring the rewritten checkpoint from scratch', async () => {
    expect(twoSteps.iterations.map((s) => s.removed)).toHaveLength(2);
    const removedSoFar: number[] = [];
    for (let k = 0; k < twoSteps.iterations.length; k++) {
      removedSoFar.push(twoSteps.iterations[k].removed);
      const out = path.join(tmp, `step${k + 1}`);
      const rw = await rewriteCheckpoint(stories260kDir, out, { removeLayers: removedSoFar });
      const fresh = await scoreLayers(out, batch, { threads });
      const got = twoSteps.rescored[k];
      expect(Object.keys(got).map(Number).sort((a, b) => a - b)).toEqual(rw.keptLayers);
      for (const [oldIdx, newIdx] of Object.entries(rw.layerMapping)) {
        const a = got[Number(oldIdx)];
        const b = fresh.layers[newIdx];
        expect(Math.abs(a.blockInfluence - b.blockInfluence)).toBeLessThan(1e-9);
        expect(Math.abs(a.angularDistance - b.angularDistance)).toBeLessThan(1e-9);
        expect(Math.abs(a.relativeMagnitude - b.relativeMagnitude)).toBeLessThan(1e-9);
        expect(a.tokens).toBe(b.tokens);
      }
    }
    // The second step chose the lowest re-scored layer, not the second lowest of the full model.
    const step2 = twoSteps.iterations[1];
    const left = Object.entries(step2.scores).map(([l, v]) => ({ l: Number(l), v }));
    expect(step2.score).toBe(Math.min(...left.map((x) => x.v)));
  });

  it('gives the same scores with every snapshot budget, recomputing less with more memory', async () => {
    const req = resolveRequest(5, { remove: 3 });
    const none = await iterative(ckpt, [batch], 'bi', req, { engine: { threads }, snapshotBudgetBytes: 0 });
    const one = await iterative(ckpt, [batch], 'bi', req, { engine: { threads }, snapshotBudgetBytes: 6110 * 64 * 4 });
    const all = await iterative(ckpt, [batch], 'bi', req, { engine: { threads } });
    for (const r of [one, all]) {
      expect(r.removed).toEqual(none.removed);
      expect(r.rescored).toEqual(none.rescored);
      expect(r.iterations).toEqual(none.iterations);
    }
    expect(none.snapshots.taken).toBe(0);
    expect(one.snapshots.boundaries).toHaveLength(1);
    expect(all.snapshots.boundaries).toEqual([1, 2, 3, 4]);
    expect(all.snapshots.layersRecomputed).toBe(0);
    expect(one.snapshots.layersRecomputed).toBeLessThanOrEqual(none.snapshots.layersRecomputed);
    expect(none.snapshots.layersRecomputed).toBeGreaterThan(0);
  });
});

describe('block strategy', () => {
  it('matches block distances from an independent float64 forward pass', async () => {
    const few = tokens.slice(0, 6);
    const scored = await scoreLayers(ckpt, few, { threads, keepLastTokenStates: true });
    const r = chooseBlock(scored.lastTokenStates!, resolveRequest(5, { remove: 2 }));
    const states = few.map((seq) => referenceHiddenStates(stories260kDir, seq));
    const hidden = 64;
    for (const [start, distance] of Object.entries(r.block!.candidates!)) {
      const l = Number(start);
      let sum = 0;
      for (let s = 0; s < few.length; s++) {
        const last = (few[s].length - 1) * hidden;
        const a = states[s][l].subarray(last, last + hidden);
        const b = states[s][l + 2].subarray(last, last + hidden);
        let dot = 0, na = 0, nb = 0;
        for (let i = 0; i < hidden; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        sum += Math.acos(dot / Math.sqrt(na * nb)) / Math.PI;
      }
      expect(Math.abs(distance - sum / few.length)).toBeLessThan(1e-5);
    }
    expect(r.removed).toEqual([r.block!.start, r.block!.start + 1]);
  });
});

describe('batching', () => {
  it('never changes the scores (sums regrouped: 1e-12)', async () => {
    const one = await scoreBatches(ckpt, [batch], { engine: { threads } });
    const many = await scoreBatches(ckpt, [batch.slice(0, 5), batch.slice(5, 6), batch.slice(6)], { engine: { threads }, keepLastTokenStates: true });
    expect(many.tokens).toBe(one.tokens);
    for (let l = 0; l < 5; l++) {
      expect(Math.abs(many.layers[l].blockInfluence - one.layers[l].blockInfluence)).toBeLessThan(1e-12);
      expect(Math.abs(many.layers[l].angularDistance - one.layers[l].angularDistance)).toBeLessThan(1e-12);
    }
    expect(many.lastTokenStates?.sequences).toBe(tokens.length);
  });
});
