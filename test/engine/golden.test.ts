/**
 * The engine against the golden fixture (test/fixtures/golden): every layer's BI, angular
 * distance and relative magnitude and the perplexity (also with layers skipped) of the real
 * stories260k model, from the independent float64 reference (which `npm run golden` checks
 * against a second independent implementation's values). Also: bit-identical results for 1 and 2 threads, and
 * the score/eval commands on the same data.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { main } from '../../lib/cli/main';
import { perplexity } from '../../lib/eval/perplexity';
import { scoreLayers, type LayerScores } from '../../lib/scoring/scoreLayers';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';
import { GOLDEN_PERPLEXITY_REL_TOL as REL, GOLDEN_SCORE_ABS_TOL as ABS, goldenTokensFile as tokensFile, loadGolden, loadGoldenTokens } from '../helpers/golden';

const golden = loadGolden();
const tokens = loadGoldenTokens();

let ckpt: Checkpoint;
let scores1: LayerScores;
let scores2: LayerScores;

beforeAll(async () => {
  ckpt = await openCheckpoint(stories260kDir);
  scores1 = await scoreLayers(ckpt, tokens, { threads: 1 });
  scores2 = await scoreLayers(ckpt, tokens, { threads: 2 });
});

describe('scoreLayers on stories260k', () => {
  it(`matches the golden BI, angular distance and relative magnitude within ${ABS}`, () => {
    expect(scores1.tokens).toBe(golden.tokensCount);
    expect(scores1.layers).toHaveLength(golden.layers.length);
    for (const g of golden.layers) {
      const s = scores1.layers[g.layer];
      expect(s.tokens).toBe(golden.tokensCount);
      expect(s.nanCount).toBe(0);
      expect(Math.abs(s.blockInfluence - g.bi)).toBeLessThan(ABS);
      expect(Math.abs(s.angularDistance - g.angular)).toBeLessThan(ABS);
      expect(Math.abs(s.relativeMagnitude - g.relmag)).toBeLessThan(ABS);
    }
  });

  it('is bit-identical with 1 and 2 threads', () => {
    expect(scores2.layers).toEqual(scores1.layers);
  });
});

describe('perplexity on stories260k', () => {
  it(`matches the golden perplexity and the logits checksum within ${REL} relative`, async () => {
    const r = await perplexity(ckpt, tokens, { threads: 2 });
    expect(r.predictions).toBe(golden.predictedCount);
    expect(r.tokens).toBe(golden.tokensCount);
    expect(Math.abs(r.perplexity / golden.perplexity - 1)).toBeLessThan(REL);
    expect(Math.abs(r.logitsSum / golden.logitsSum - 1)).toBeLessThan(REL);
    const r1 = await perplexity(ckpt, tokens, { threads: 1 });
    expect(r1).toEqual(r);
  });

  it.each(Object.entries(golden.perplexitySkipping))('with layers %s skipped matches the golden value', async (layers, want) => {
    const r = await perplexity(ckpt, tokens, { skipLayers: layers.split(',').map(Number), threads: 2 });
    expect(Math.abs(r.perplexity / want - 1)).toBeLessThan(REL);
  });
});

describe('score and eval commands', () => {
  it('score --json prints golden BI with ranks by BI ascending', async () => {
    const io = capture();
    expect(await main(['score', stories260kDir, '--tokens', tokensFile, '--json', '--threads', '2'], io)).toBe(0);
    const doc = JSON.parse(io.out()) as { model: string; tokens: number; layers: { layer: number; bi: number; angular: number; relmag: number; rank: number }[] };
    expect(doc.tokens).toBe(golden.tokensCount);
    const byBi = [...golden.layers].sort((a, b) => a.bi - b.bi).map((l) => l.layer);
    for (const l of doc.layers) {
      expect(Math.abs(l.bi - golden.layers[l.layer].bi)).toBeLessThan(ABS);
      expect(l.rank).toBe(byBi.indexOf(l.layer) + 1);
    }
  });

  it('score prints a table', async () => {
    const io = capture();
    expect(await main(['score', stories260kDir, '--tokens', tokensFile], io)).toBe(0);
    expect(io.out()).toMatch(/layer\s+BI\s+angular\s+relmag\s+rank/);
    expect(io.out().trim().split('\n')).toHaveLength(2 + golden.layers.length);
  });

  it('eval --skip-layers 1,3 --json prints the golden perplexity', async () => {
    const io = capture();
    expect(await main(['eval', stories260kDir, '--tokens', tokensFile, '--skip-layers', '1,3', '--json'], io)).toBe(0);
    const doc = JSON.parse(io.out()) as { perplexity: number; tokens: number };
    expect(doc.tokens).toBe(golden.tokensCount);
    expect(Math.abs(doc.perplexity / golden.perplexitySkipping['1,3'] - 1)).toBeLessThan(REL);
  });

  it('rejects token files that are malformed or outside the vocabulary, naming the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgn-tokens-'));
    const cases: [string, string][] = [
      ['[[1, 2, 512]]', 'ERR_TOKEN_RANGE'],
      ['[[1, 2.5]]', 'ERR_TOKEN_FILE'],
      ['[]', 'ERR_TOKEN_FILE'],
      ['{"a": 1}', 'ERR_TOKEN_FILE'],
      ['[[1, 2]', 'ERR_TOKEN_FILE'],
    ];
    for (const [text, code] of cases) {
      const f = path.join(dir, 'tokens.json');
      fs.writeFileSync(f, text);
      const io = capture();
      expect(await main(['eval', stories260kDir, '--tokens', f], io)).toBe(1);
      expect(io.err()).toContain(code);
      expect(io.err()).toContain(f);
    }
    const io = capture();
    expect(await main(['eval', stories260kDir, '--tokens', tokensFile, '--skip-layers', '5'], io)).toBe(2);
    expect(await main(['score', stories260kDir], io)).toBe(2);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
