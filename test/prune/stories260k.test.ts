/**
 * The pruned real model computes what the source computes with those layers skipped: the
 * independent float64 reference (test/reference) run on the rewritten checkpoint must give the
 * golden perplexity that the golden fixture lists for the source with the same layers skipped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { stories260kDir } from '../helpers/paths';
import { referencePerplexity } from '../reference/forward64';
import { tempRoot } from './helpers/rawCheckpoint';
import { loadGolden, loadGoldenTokens } from '../helpers/golden';

const golden = loadGolden();
const sequences = loadGoldenTokens();

let root: string;
beforeAll(() => {
  root = tempRoot('sgpt-stories-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('stories260k pruned == stories260k with layers skipped', () => {
  // One case: the reference forward costs a few CPU seconds, and 1,3 is the case the issue names.
  it.each([['1,3']])('removing layers %s reproduces the golden skipped-layer perplexity', async (layers) => {
    const out = path.join(root, `without-${layers}`);
    const r = await rewriteCheckpoint(stories260kDir, out, { removeLayers: layers.split(',').map(Number) });
    expect(r.numHiddenLayers).toBe(5 - layers.split(',').length);
    const ppl = referencePerplexity(out, sequences);
    // Both are float64 runs of the same formulas; only summation order separates them.
    expect(Math.abs(ppl.perplexity / golden.perplexitySkipping[layers]! - 1)).toBeLessThan(1e-9);
  });
});
