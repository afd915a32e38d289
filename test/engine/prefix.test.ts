/**
 * Shared prefixes (NativeSessionOptions.sharedPrefixes): a child sequence computes only its rows
 * from its prefix length on, attending to its parent's keys/values for the prefix. Checked against
 * the same sequences run whole (the independent reference): per-token logprobs, every layer's
 * residual rows, Block Influence over the rows computed, a sliding-window spec, several batches,
 * a family larger than one gather chunk, and the validation errors.
 *
 * Equality is exact (toBe): a child row's attention sums the same keys, in the same order, with
 * the same kernel as in the whole run, and each row's GEMM/norm/MLP results do not depend on the
 * other rows of the batch, so nothing differs but where the rows sit.
 */
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { embeddingRef, finalNormRef, layerTensorRefs, lmHeadRef, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession, type SharedPrefix } from '../../lib/engine/session';
import type { NativeModelSpec, NativeLayerStats } from '../../binding';
import { stories260kDir } from '../helpers/paths';
import { loadGoldenTokens } from '../helpers/golden';

const golden = loadGoldenTokens();
let ckpt: Checkpoint;
beforeAll(async () => {
  ckpt = await openCheckpoint(stories260kDir);
});

interface Run {
  logprob: Float64Array;
  /** The residual stream after the embedding and after each layer. */
  residuals: Float32Array[];
  stats: NativeLayerStats[];
  totalTokens: number;
}

async function run(spec: NativeModelSpec, seqs: number[][], links?: Array<SharedPrefix | null>, threads = 2): Promise<Run> {
  const s = EngineSession.create(spec, seqs, { threads, sharedPrefixes: links });
  try {
    await s.embed(embeddingRef(ckpt));
    const residuals = [s.snapshot()];
    const stats: NativeLayerStats[] = [];
    for (let l = 0; l < ckpt.config.numHiddenLayers; l++) {
      stats.push(await s.forwardLayer(l, layerTensorRefs(ckpt, l)));
      residuals.push(s.snapshot());
    }
    const r = await s.tokenLogprobs(finalNormRef(ckpt), lmHeadRef(ckpt));
    return { logprob: r.logprob, residuals, stats, totalTokens: s.totalTokens };
  } finally {
    await s.dispose();
  }
}

/** For each row of the shared run, the row of the whole run it stands for. */
function rowMap(seqs: number[][], links: Array<SharedPrefix | null>): number[] {
  const map: number[] = [];
  let whole = 0;
  seqs.forEach((seq, i) => {
    const p = links[i]?.length ?? 0;
    for (let t = p; t < seq.length; t++) map.push(whole + t);
    whole += seq.length;
  });
  return map;
}

/** Families: a context from one golden story, continuations from others. */
function families(count: number, contextLen: number, choices: number, share: (ctx: number, family: number) => number): {
  seqs: number[][];
  links: Array<SharedPrefix | null>;
} {
  const seqs: number[][] = [];
  const links: Array<SharedPrefix | null> = [];
  for (let f = 0; f < count; f++) {
    const story = golden[f % golden.length];
    const ctx = story.slice(f % 7, (f % 7) + contextLen);
    const root = seqs.length;
    for (let c = 0; c < choices; c++) {
      const other = golden[(f + c + 1) % golden.length];
      const cont = other.slice(c, c + 3 + ((f + c) % 6));
      seqs.push([...ctx, ...cont]);
      links.push(c === 0 ? null : { parent: root, length: share(ctx.length, f) });
    }
  }
  return { seqs, links };
}

function expectSameRows(shared: Run, whole: Run, map: number[], H: number): void {
  expect(shared.totalTokens).toBe(map.length);
  for (let e = 0; e < whole.residuals.length; e++) {
    const a = shared.residuals[e];
    const b = whole.residuals[e];
    let mismatches = 0;
    map.forEach((w, r) => {
      for (let i = 0; i < H; i++) if (a[r * H + i] !== b[w * H + i]) mismatches++;
    });
    expect({ entry: e, mismatches }).toEqual({ entry: e, mismatches: 0 });
  }
  map.forEach((w, r) => {
    const x = shared.logprob[r];
    const y = whole.logprob[w];
    // A child's last row is its sequence's last: NaN in both runs.
    if (Number.isNaN(y)) expect(x).toBeNaN();
    else expect(x).toBe(y);
  });
}

/** Block Influence's cosine sum over `rows` of a run, from its residual snapshots (double). */
function cosSum(run: Run, layer: number, rows: number[], H: number): number {
  const a = run.residuals[layer];
  const b = run.residuals[layer + 1];
  let sum = 0;
  for (const r of rows) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < H; i++) {
      dot += a[r * H + i] * b[r * H + i];
      na += a[r * H + i] ** 2;
      nb += b[r * H + i] ** 2;
    }
    sum += dot / Math.sqrt(na * nb);
  }
  return sum;
}

describe('shared prefixes equal the whole sequences', () => {
  it('per-token logprobs, residual rows and Block Influence (context - 1 shared, one family per item)', async () => {
    const spec = nativeModelSpec(ckpt.config);
    const { seqs, links } = families(6, 40, 4, (n) => n - 1);
    const whole = await run(spec, seqs);
    const shared = await run(spec, seqs, links);
    const map = rowMap(seqs, links);
    expectSameRows(shared, whole, map, spec.hiddenSize);
    // Every computed row counts once: tokens are the unique rows, and the cosine sums are those
    // of exactly those rows of the whole run.
    for (let l = 0; l < shared.stats.length; l++) {
      expect(shared.stats[l].tokens).toBe(map.length);
      const expected = cosSum(whole, l, map, spec.hiddenSize);
      expect(Math.abs(shared.stats[l].sumCos - expected)).toBeLessThan(1e-9 * map.length);
      // A root's rows are all its own: its per-sequence sums are the whole run's, bit for bit.
      links.forEach((link, i) => {
        if (link) return;
        expect(shared.stats[l].perSequence!.sumCos[i]).toBe(whole.stats[l].perSequence!.sumCos[i]);
      });
    }
    const wholeRows = seqs.reduce((a, s) => a + s.length, 0);
    expect(map.length).toBeLessThan(wholeRows * 0.5);
  });

  it('any prefix length, several batches, one thread and two', async () => {
    const spec = nativeModelSpec(ckpt.config);
    // About 60 families of ~80 tokens: several 1,024-token batches, families kept whole.
    const { seqs, links } = families(60, 50, 3, (n, f) => 1 + ((f * 7) % n));
    const whole = await run(spec, seqs, undefined, 2);
    const map = rowMap(seqs, links);
    expectSameRows(await run(spec, seqs, links, 2), whole, map, spec.hiddenSize);
    expectSameRows(await run(spec, seqs, links, 1), whole, map, spec.hiddenSize);
  });

  it('a family larger than one gather chunk (many children of one parent)', async () => {
    const spec = nativeModelSpec(ckpt.config);
    const ctx = golden[0].slice(0, 200);
    const seqs = [ctx.concat(golden[1].slice(0, 4))];
    const links: Array<SharedPrefix | null> = [null];
    for (let c = 1; c <= 30; c++) {
      seqs.push(ctx.concat(golden[(c % 20) + 2].slice(c % 5, (c % 5) + 2 + (c % 4))));
      links.push({ parent: 0, length: 199 });
    }
    expectSameRows(await run(spec, seqs, links), await run(spec, seqs), rowMap(seqs, links), spec.hiddenSize);
  });

  it('a sliding-window spec (the window reaches back into the parent prefix)', async () => {
    const spec = { ...nativeModelSpec(ckpt.config), slidingWindow: 7 };
    const { seqs, links } = families(5, 30, 4, (n) => n - 1);
    const whole = await run(spec, seqs);
    expectSameRows(await run(spec, seqs, links), whole, rowMap(seqs, links), spec.hiddenSize);
    // The window changes the answer, so the check above is not vacuous.
    const full = await run(nativeModelSpec(ckpt.config), seqs);
    expect(full.logprob.some((x, i) => !Number.isNaN(x) && x !== whole.logprob[i])).toBe(true);
  });
});

describe('shared-prefix validation', () => {
  const seqs = [
    [5, 6, 7, 8, 9],
    [5, 6, 7, 10],
    [5, 6, 11, 12],
  ];
  function error(links: unknown): { code?: string; message: string } | undefined {
    try {
      EngineSession.create(nativeModelSpec(ckpt.config), seqs, { threads: 1, sharedPrefixes: links as SharedPrefix[] });
      return undefined;
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    }
  }
  it.each([
    ['a parent out of range', [null, { parent: 3, length: 2 }, null], /sequence 1: shared-prefix parent 3 must be an earlier sequence/],
    ['a later parent', [{ parent: 1, length: 2 }, null, null], /sequence 0: shared-prefix parent 1 must be an earlier/],
    ['a chain', [null, { parent: 0, length: 3 }, { parent: 1, length: 2 }], /sequence 2: shared-prefix parent 1 shares a prefix itself/],
    ['p beyond the parent', [null, null, { parent: 1, length: 5 }], /sequence 2: shared-prefix length 5 must be in \[1, 4\]/],
    ['p of the whole child', [null, { parent: 0, length: 4 }, null], /sequence 1: shared-prefix length 4 leaves none of its 4 tokens/],
    ['p zero', [null, { parent: 0, length: 0 }, null], /sequence 1: shared-prefix length 0 must be in/],
    ['tokens differing from the parent', [null, null, { parent: 0, length: 3 }], /sequence 2: token 11 at position 2 differs from parent sequence 0's token 7/],
    ['too few entries', [null, { parent: 0, length: 3 }], /sharedPrefixes has 2 entries, expected one per sequence \(3\)/],
  ])('%s: ERR_INVALID_ARG naming the sequence', (_what, links, message) => {
    const e = error(links);
    expect(e?.code).toBe('ERR_INVALID_ARG');
    expect(e?.message).toMatch(message);
  });

  it('longrope (its table depends on the whole length) refuses with ERR_UNSUPPORTED', () => {
    const spec: NativeModelSpec = {
      ...nativeModelSpec(ckpt.config),
      ropeScaling: { type: 'longrope', shortFactor: [1, 1, 1, 1], longFactor: [2, 2, 2, 2], originalMaxPositionEmbeddings: 64, attentionFactor: 1 },
    };
    let code: string | undefined;
    try {
      EngineSession.create(spec, seqs, { threads: 1, sharedPrefixes: [null, { parent: 0, length: 3 }, null] });
    } catch (e) {
      code = (e as { code?: string }).code;
      expect((e as Error).message).toMatch(/shared prefixes are not supported with longrope/);
    }
    expect(code).toBe('ERR_UNSUPPORTED');
  });

  it('a valid plan creates a session whose totalTokens counts the unique rows', async () => {
    const s = EngineSession.create(nativeModelSpec(ckpt.config), seqs, { threads: 1, sharedPrefixes: [null, { parent: 0, length: 3 }, { parent: 0, length: 2 }] });
    expect(s.totalTokens).toBe(5 + 1 + 2);
    expect(s.sequenceCount).toBe(3);
    await s.dispose();
  });
});
