/**
 * Per-token next-token log-probabilities of many sequences from the engine: the sequences go
 * through the model in batches of at most `batchTokens` tokens (one session each), layer by
 * layer with `skipLayers` skipped, and the session's tokenLogprobs gives, per row, log p(next
 * token) in double from the f32 logits (NaN for a sequence's last row).
 *
 * With `sharedPrefixes` (a multiple-choice item's choices share its context) a child sequence
 * computes only its rows from its prefix length on, attending to its parent's prefix; a family
 * (a root and its children) runs in one session, and the child's earlier rows are filled from the
 * parent's, which predict the same tokens from the same prefix. The values equal those of the
 * whole sequences (test/engine/prefix.test.ts). A backend that cannot share (CUDA) runs whole
 * sequences instead.
 */
import type { Checkpoint } from '../checkpoint/types';
import { checkSkipLayers, forwardKeptLayers } from '../engine/forwardKept';
import { finalNormRef, lmHeadRef, nativeModelSpec } from '../engine/modelSpec';
import { engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { EngineSession, type SharedPrefix } from '../engine/session';
import { ShortGptError } from '../errors';

export interface LogprobOptions extends EngineOptions {
  skipLayers?: number[];
  signal?: AbortSignal;
  onProgress?: (p: { sequencesDone: number; sequencesTotal: number }) => void;
  batchTokens?: number;
  /**
   * Per sequence (aligned with the sequences; null: none), the earlier root sequence whose first
   * `length` tokens it shares. Every row of the result is still given (see the file comment).
   */
  sharedPrefixes?: ReadonlyArray<SharedPrefix | null | undefined>;
}

/** log p(sequence[r + 1] | sequence[0..r]) for every row r of every sequence (NaN for the last). */
export type LogprobSource = (ckpt: Checkpoint, sequences: readonly Int32Array[], options: LogprobOptions) => Promise<Float64Array[]>;

export const DEFAULT_TASK_BATCH_TOKENS = 65536;

/** Sequences, in order, in groups of at most `budget` tokens (a longer one alone). */
export function tokenBatches(sequences: readonly Int32Array[], budget: number): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  let start = 0;
  let used = 0;
  for (let i = 0; i < sequences.length; i++) {
    if (i > start && used + sequences[i].length > budget) {
      out.push({ start, end: i });
      start = i;
      used = 0;
    }
    used += sequences[i].length;
  }
  if (sequences.length > start) out.push({ start, end: sequences.length });
  return out;
}

/** A root and its children (indices into the sequences), and the rows the engine computes for them. */
interface Family {
  members: number[];
  rows: number;
}

/**
 * The sequences as families in root order (children in their own order after their root), each
 * with its rows; without links, every sequence alone. ERR_INVALID_ARG for a link that is not to
 * an earlier root (the engine checks the tokens).
 */
export function prefixFamilies(sequences: readonly Int32Array[], links?: ReadonlyArray<SharedPrefix | null | undefined>): Family[] {
  if (links && links.length !== sequences.length) {
    throw new ShortGptError('ERR_INVALID_ARG', `sharedPrefixes has ${links.length} entries, expected one per sequence (${sequences.length})`);
  }
  const families = new Map<number, Family>();
  sequences.forEach((seq, i) => {
    const link = links?.[i];
    if (!link) {
      families.set(i, { members: [i], rows: seq.length });
      return;
    }
    const root = families.get(link.parent);
    if (!Number.isSafeInteger(link.parent) || link.parent >= i || !root || root.members[0] !== link.parent) {
      throw new ShortGptError('ERR_INVALID_ARG', `sequence ${i}: shared-prefix parent ${link.parent} must be an earlier sequence that shares no prefix itself`);
    }
    root.members.push(i);
    root.rows += seq.length - link.length;
  });
  return [...families.values()];
}

/** Families, in order, in groups of at most `budget` computed rows (a larger one alone). */
function familyBatches(families: readonly Family[], budget: number): Family[][] {
  const out: Family[][] = [];
  let cur: Family[] = [];
  let used = 0;
  for (const f of families) {
    if (cur.length > 0 && used + f.rows > budget) {
      out.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(f);
    used += f.rows;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export const engineLogprobs: LogprobSource = async (ckpt, sequences, options) => {
  const skip = checkSkipLayers(ckpt, options.skipLayers, 'skip');
  const budget = options.batchTokens ?? DEFAULT_TASK_BATCH_TOKENS;
  const links = options.sharedPrefixes;
  const out: Float64Array[] = new Array<Float64Array>(sequences.length);
  let done = 0;
  let canShare = links !== undefined;
  for (const group of familyBatches(prefixFamilies(sequences, links), budget)) {
    const members = group.flatMap((f) => f.members);
    const batch = members.map((i) => sequences[i]);
    const local = new Map(members.map((i, k) => [i, k]));
    const localLinks = members.map((i) => {
      const l = links?.[i];
      return l ? { parent: local.get(l.parent)!, length: l.length } : null;
    });
    const shared = canShare && localLinks.some((l) => l !== null);
    let session: EngineSession;
    try {
      session = EngineSession.create(nativeModelSpec(ckpt.config), batch, { ...engineOptionsOf(options), ...(shared ? { sharedPrefixes: localLinks } : {}) });
    } catch (e) {
      // A backend without shared prefixes (CUDA, longrope): whole sequences, for every batch.
      if (!(shared && e instanceof ShortGptError && e.code === 'ERR_UNSUPPORTED')) throw e;
      canShare = false;
      session = EngineSession.create(nativeModelSpec(ckpt.config), batch, engineOptionsOf(options));
    }
    const used = shared && canShare;
    try {
      const { signal } = options;
      await forwardKeptLayers(session, ckpt, skip, { signal });
      const r = await session.tokenLogprobs(finalNormRef(ckpt), lmHeadRef(ckpt), { signal });
      let row = 0;
      members.forEach((i, k) => {
        const seq = sequences[i];
        const link = used ? localLinks[k] : null;
        const p = link ? link.length : 0;
        const lp = new Float64Array(seq.length);
        lp.set(r.logprob.subarray(row, row + seq.length - p), p);
        row += seq.length - p;
        if (link) {
          // Row t < p predicts token t + 1 from the shared tokens 0..t: the parent's row t, where
          // the parent predicts the same token (always below p - 1; at p - 1 only if equal).
          const parent = sequences[members[link.parent]];
          const parentLp = out[members[link.parent]];
          for (let t = 0; t < p; t++) lp[t] = t + 1 < parent.length && parent[t + 1] === seq[t + 1] ? parentLp[t] : Number.NaN;
        }
        out[i] = lp;
      });
    } finally {
      await session.dispose();
    }
    done += members.length;
    options.onProgress?.({ sequencesDone: done, sequencesTotal: sequences.length });
  }
  return out;
};
