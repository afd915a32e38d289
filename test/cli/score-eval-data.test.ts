/**
 * `score --calib` and `eval --data` read data through the same path as `prune`: on the golden
 * token windows (a JSON file of id arrays, each <= 256 tokens, so one window each) they
 * reproduce the golden float64 Block Influence and perplexity, and --json is one document.
 */
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { sherlockText, stories260kDir } from '../helpers/paths';
import { GOLDEN_PERPLEXITY_REL_TOL as REL, GOLDEN_SCORE_ABS_TOL as ABS, goldenTokensFile as tokensFile, loadGolden } from '../helpers/golden';

const golden = loadGolden();

it('score --calib GOLDEN_WINDOWS --json reproduces the golden BI, angular distance and relative magnitude', async () => {
  const io = capture();
  expect(await main(['score', stories260kDir, '--calib', tokensFile, '--json', '--threads', '2'], io)).toBe(0);
  const doc = JSON.parse(io.out()) as { tokens: number; layers: { layer: number; bi: number; angular: number; relmag: number; rank: number }[] };
  expect(doc.tokens).toBe(golden.tokensCount);
  for (const g of golden.layers) {
    const l = doc.layers[g.layer];
    expect(Math.abs(l.bi - g.bi)).toBeLessThan(ABS);
    expect(Math.abs(l.angular - g.angular)).toBeLessThan(ABS);
    expect(Math.abs(l.relmag - g.relmag)).toBeLessThan(ABS);
  }
  const lowest = [...golden.layers].sort((a, b) => a.bi - b.bi)[0].layer;
  expect(doc.layers.find((l) => l.rank === 1)?.layer).toBe(lowest);
});

it('eval --data GOLDEN_WINDOWS reproduces the golden perplexity, and with a layer skipped', async () => {
  for (const [skip, want] of [[undefined, golden.perplexity], ['2', golden.perplexitySkipping['2']]] as const) {
    const io = capture();
    const args = ['eval', stories260kDir, '--data', tokensFile, '--json', '--threads', '2', ...(skip ? ['--skip-layers', skip] : [])];
    expect(await main(args, io)).toBe(0);
    const doc = JSON.parse(io.out()) as { perplexity: number; predictions: number };
    expect(doc.predictions).toBe(golden.predictedCount);
    expect(Math.abs(doc.perplexity / want - 1)).toBeLessThan(REL);
  }
});

it('text data: eval --data with --seq-len and --stride windows the text and says how', async () => {
  const io = capture();
  const text = sherlockText;
  expect(await main(['eval', stories260kDir, '--data', text, '--seq-len', '128', '--stride', '64', '--samples', '8', '--threads', '2'], io)).toBe(0);
  expect(io.out()).toMatch(/^perplexity \d+\.\d+ /);
  expect(io.err()).toMatch(/data: [\d,]+ documents?, [\d,]+ tokens -> 8 windows of <= 128 tokens, stride 64 \(a sample of [\d,]+, seed 0\)/);
});
