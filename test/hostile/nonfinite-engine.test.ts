/**
 * The engine's non-finite checks below the CLI: the first bad position is reported the same for
 * any thread count, a NaN/Inf in the residual stream is located by sequence, position and hidden
 * index (put there by the test through restore()), and a zero state is still the 0.5 rule, not
 * an error. The session is unusable after such an error, like after any failed layer.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { embeddingRef, layerTensorRefs, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession } from '../../lib/engine/session';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { stories260kDir } from '../helpers/paths';
import { poisonedCopy } from './helpers/poison';

const H = 64;
const I = 172;
const sequences = [
  [1, 40, 41, 42, 43, 44, 45, 46],
  [1, 50, 51, 52, 53, 54, 55, 56],
  [1, 60, 61, 62],
];

let tmp: string;
let ckpt: Checkpoint;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-nonfinite-engine-'));
  ckpt = await openCheckpoint(stories260kDir);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Errors are checked by `code`, not instanceof: an error made by the addon belongs to the main
// realm, not to jest's sandbox, so lib/engine/session.ts's translate() leaves it a plain Error here.
async function codeAndMessage(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (e) {
    return [String((e as { code?: unknown }).code), (e as Error).message];
  }
  throw new Error('expected a rejection');
}

it.each([1, 2])('names the first bad weight element whatever the thread count (%i threads)', async (threads) => {
  // Rows 40 and 5 of down_proj lie in different 16-row panels, packed by different threads.
  const dir = poisonedCopy(stories260kDir, path.join(tmp, `down-${threads}`), [
    { tensor: 'model.layers.0.mlp.down_proj.weight', elements: [40 * I + 2], value: Infinity },
    { tensor: 'model.layers.0.mlp.down_proj.weight', elements: [5 * I + 17], value: NaN },
  ]);
  const [code, message] = await codeAndMessage(scoreLayers(dir, sequences, { threads }));
  expect(code).toBe('ERR_NONFINITE_WEIGHT');
  expect(message).toMatch(/^layer 0: tensor 'model\.layers\.0\.mlp\.down_proj\.weight' .*\(NaN\) at element 877 = position \[5, 17\]/);
});

it('names the embedding row of a used token, not an unused one', async () => {
  const dir = poisonedCopy(stories260kDir, path.join(tmp, 'embed'), [
    { tensor: 'model.embed_tokens.weight', elements: [500 * H], value: NaN }, // token 500: not in the sequences
    { tensor: 'model.embed_tokens.weight', elements: [52 * H + 9], value: -Infinity },
  ]);
  const [code, message] = await codeAndMessage(scoreLayers(dir, sequences, { threads: 2 }));
  expect(code).toBe('ERR_NONFINITE_WEIGHT');
  expect(message).toMatch(/^embedding: tensor 'model\.embed_tokens\.weight' .*\(-Inf\) at element 3337 = position \[52, 9\]/);
});

it.each([
  ['NaN', NaN, 1, 0],
  ['+Inf', Infinity, 2, 2],
])('locates %s in the residual stream by sequence, position and hidden index', async (_name, value, seq, pos) => {
  const s = EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads: 2 });
  try {
    await s.embed(embeddingRef(ckpt));
    const h = s.snapshot();
    let row = pos;
    for (let q = 0; q < seq; q++) row += sequences[q].length;
    h[row * H + 5] = value;
    s.restore(h);
    const [code, message] = await codeAndMessage(s.forwardLayer(0, layerTensorRefs(ckpt, 0)));
    expect(code).toBe('ERR_NONFINITE_ACTIVATION');
    // Other sequences never see the bad token (attention stays within a sequence), so the
    // sequence is exact. Within it, the blocked attention kernel scores a tile of keys before
    // masking the future ones, so a NaN key can reach earlier positions of the same sequence: the
    // reported position is the first bad one of the output, at or before the poisoned one.
    // RMSNorm spreads a bad value over its row, so hidden index 0 is bad.
    const m = /^layer 0: the layer's output \(the residual stream\) became non-finite \((NaN|[+-]Inf)\) at sequence (\d+), position (\d+), hidden index 0 /.exec(message);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBe(seq);
    expect(Number(m![3])).toBeLessThanOrEqual(pos);
    await expect(s.forwardLayer(1, layerTensorRefs(ckpt, 1))).rejects.toMatchObject({ code: 'ERR_STATE' });
  } finally {
    await s.dispose();
  }
});

it('a zero state is not an error: its cosine counts as 0.5 and it is counted', async () => {
  const s = EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads: 2 });
  try {
    await s.embed(embeddingRef(ckpt));
    const h = s.snapshot();
    h.fill(0, 0, H); // sequence 0, position 0: stays zero through the layer (nothing to attend to)
    s.restore(h);
    const st = await s.forwardLayer(0, layerTensorRefs(ckpt, 0));
    expect(st.nanCount).toBe(1);
    expect(Number.isFinite(st.sumCos)).toBe(true);
    expect(s.snapshot().subarray(0, H).every((v) => v === 0)).toBe(true);
  } finally {
    await s.dispose();
  }
});
