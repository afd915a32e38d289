/**
 * Block (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers", §3.2):
 * delete the N contiguous layers [l, l+N) whose input x_l and output x_{l+N} are closest, by the
 * angular distance arccos(cos(x_l, x_{l+N})) / pi of the last token of each window, averaged over
 * windows. The last token is the one that has attended to the whole window, which is why the
 * paper measures there. Computed in double from the engine's f32 last-token states.
 */
import type { NativeLastTokenStates } from '../../../binding';
import { ShortGptError } from '../../errors';
import type { BlockChoice } from '../../report/types';
import type { ResolvedRequest } from '../choose';
import type { StrategyResult } from './types';

/** Mean over sequences of arccos(cos(a_s, b_s)) / pi; an undefined cosine (zero norm) counts as 0.5, as in the engine. */
export function meanAngularDistance(a: Float32Array, b: Float32Array, sequences: number, hidden: number): number {
  let sum = 0;
  for (let s = 0; s < sequences; s++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    const o = s * hidden;
    for (let i = 0; i < hidden; i++) {
      const x = a[o + i];
      const y = b[o + i];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    const denom = Math.sqrt(na) * Math.sqrt(nb);
    const cos = denom > 0 ? Math.min(1, Math.max(-1, dot / denom)) : Number.NaN;
    sum += Number.isNaN(cos) ? 0.5 : Math.acos(cos) / Math.PI;
  }
  return sum / sequences;
}

/** The state entering layer `l` (l = numLayers: the last layer's output), as a view. */
function stateBefore(states: NativeLastTokenStates, l: number): Float32Array {
  const entry = states.layers.indexOf(l - 1);
  if (entry < 0) {
    throw new ShortGptError('ERR_STATE', `block strategy: no last-token state after ${l === 0 ? 'the embedding' : `layer ${l - 1}`}; score with keepLastTokenStates`);
  }
  const n = states.sequences * states.hiddenSize;
  return states.data.subarray(entry * n, (entry + 1) * n);
}

/** Every block of `req.count` layers inside the eligible range, start -> distance; the lowest wins (ties: the earliest). */
export function chooseBlock(states: NativeLastTokenStates, req: ResolvedRequest): StrategyResult {
  return chooseBlockBy((start, end) => meanAngularDistance(stateBefore(states, start), stateBefore(states, end), states.sequences, states.hiddenSize), req);
}

/**
 * The choice itself, from a distance per block [start, end): the states above, or sums merged
 * from shards (lib/scoring/mergePrune.ts), so both choose by the same rule.
 */
export function chooseBlockBy(distance: (start: number, end: number) => number, req: ResolvedRequest): StrategyResult {
  const n = req.count;
  const first = req.keepFirst;
  const lastStart = req.numLayers - req.keepLast - n;
  if (lastStart < first) {
    throw new ShortGptError('ERR_KEEP_RANGE', `no block of ${n} layers fits between --keep-first ${req.keepFirst} and --keep-last ${req.keepLast} in ${req.numLayers} layers`);
  }
  const candidates: Record<string, number> = {};
  let best: BlockChoice | undefined;
  for (let l = first; l <= lastStart; l++) {
    const d = distance(l, l + n);
    candidates[String(l)] = d;
    if (best === undefined || d < best.distance || (Number.isNaN(best.distance) && !Number.isNaN(d))) best = { start: l, end: l + n, distance: d };
  }
  const block = { ...(best as BlockChoice), candidates };
  const removed: number[] = [];
  const reasons: Record<number, string> = {};
  const others = Object.keys(candidates).length - 1;
  for (let l = block.start; l < block.end; l++) {
    removed.push(l);
    reasons[l] = `in layers ${block.start}..${block.end - 1}, the block of ${n} whose input and output are closest on the last token (angular distance ${block.distance.toPrecision(4)}${others > 0 ? `, lowest of ${others + 1} blocks` : ''}; Gromov et al. 2024)`;
  }
  return { removed, reasons, block };
}
