/**
 * engineLogprobs with shared prefixes (what `eval --tasks` uses): families whose members are
 * interleaved with other sequences and split over several sessions give, row for row, the
 * log-probabilities of the whole sequences, including the child rows filled from the parent.
 */
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { EngineSession, type SharedPrefix } from '../../lib/engine/session';
import { ShortGptError } from '../../lib/errors';
import { engineLogprobs, prefixFamilies } from '../../lib/eval/taskLogprobs';
import { stories260kDir } from '../helpers/paths';
import { loadGoldenTokens } from '../helpers/golden';

const golden = loadGoldenTokens();
let ckpt: Checkpoint;
beforeAll(async () => {
  ckpt = await openCheckpoint(stories260kDir);
});

describe('engineLogprobs with sharedPrefixes', () => {
  it('equals the whole sequences row for row, across interleaved families and batches', async () => {
    const seqs: Int32Array[] = [];
    const links: Array<SharedPrefix | null> = [];
    // Roots first, then their children in a different order: families are not contiguous.
    const ctxs = Array.from({ length: 8 }, (_, f) => golden[f].slice(2, 2 + 20 + 3 * f));
    ctxs.forEach((ctx, f) => {
      seqs.push(Int32Array.from([...ctx, ...golden[f + 8].slice(0, 5)]));
      links.push(null);
    });
    for (let c = 0; c < 3; c++) {
      ctxs.forEach((ctx, f) => {
        const cont = golden[(f + c + 9) % golden.length].slice(c, c + 2 + ((f + c) % 4));
        seqs.push(Int32Array.from([...ctx, ...cont]));
        // Mostly context - 1 (the task case); sometimes the whole context, where row p - 1
        // predicts a token the parent may not share.
        links.push({ parent: f, length: c === 2 ? ctx.length : ctx.length - 1 });
      });
    }
    const whole = await engineLogprobs(ckpt, seqs, { threads: 2 });
    const progress: number[] = [];
    const shared = await engineLogprobs(ckpt, seqs, {
      threads: 2, sharedPrefixes: links, batchTokens: 120, onProgress: (p) => progress.push(p.sequencesDone),
    });
    expect(progress.length).toBeGreaterThan(2);
    expect(progress[progress.length - 1]).toBe(seqs.length);
    let filledNaN = 0;
    seqs.forEach((seq, i) => {
      expect(shared[i].length).toBe(seq.length);
      const link = links[i];
      for (let t = 0; t < seq.length; t++) {
        const parent = link ? seqs[link.parent] : undefined;
        if (link && parent && t === link.length - 1 && parent[t + 1] !== seq[t + 1]) {
          expect(shared[i][t]).toBeNaN();  // not computed: the parent predicts another token there
          filledNaN++;
        } else if (Number.isNaN(whole[i][t])) {
          expect(shared[i][t]).toBeNaN();
        } else {
          expect(shared[i][t]).toBe(whole[i][t]);
        }
      }
    });
    expect(filledNaN).toBeGreaterThan(0);
  });

  it('falls back to whole sequences where the backend refuses shared prefixes (ERR_UNSUPPORTED)', async () => {
    const seqs = [
      golden[0].slice(0, 30), golden[0].slice(0, 29).concat(golden[1].slice(0, 4)),
      golden[2].slice(0, 25), golden[2].slice(0, 20).concat(golden[3].slice(0, 3)),
    ].map((s) => Int32Array.from(s));
    const links = [null, { parent: 0, length: 28 }, null, { parent: 2, length: 19 }];
    const create = EngineSession.create.bind(EngineSession);
    const calls: boolean[] = [];
    const spy = jest.spyOn(EngineSession, 'create').mockImplementation((spec, sequences, options) => {
      calls.push(options?.sharedPrefixes !== undefined);
      if (options?.sharedPrefixes) throw new ShortGptError('ERR_UNSUPPORTED', 'shared prefixes are not supported by this backend');
      return create(spec, sequences, options);
    });
    try {
      const got = await engineLogprobs(ckpt, seqs, { threads: 1, sharedPrefixes: links, batchTokens: 20 });
      // One refused try, then every batch whole (no second try).
      expect(calls).toEqual([true, false, false]);
      spy.mockRestore();
      const whole = await engineLogprobs(ckpt, seqs, { threads: 1 });
      expect(got).toEqual(whole);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses a link to a later sequence or to a child (ERR_INVALID_ARG naming it)', () => {
    const s = [Int32Array.of(1, 2, 3), Int32Array.of(1, 2, 4), Int32Array.of(1, 2, 5)];
    expect(() => prefixFamilies(s, [null, { parent: 2, length: 1 }, null])).toThrow(/sequence 1: shared-prefix parent 2 must be an earlier/);
    expect(() => prefixFamilies(s, [null, { parent: 0, length: 1 }, { parent: 1, length: 1 }])).toThrow(/sequence 2: shared-prefix parent 1/);
    expect(() => prefixFamilies(s, [null])).toThrow(/sharedPrefixes has 1 entries, expected one per sequence \(3\)/);
    expect(prefixFamilies(s, [null, { parent: 0, length: 2 }, null])).toEqual([{ members: [0, 1], rows: 4 }, { members: [2], rows: 3 }]);
  });
});
