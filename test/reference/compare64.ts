/**
 * Float64 reference of the paired comparison (eval --compare) and of per-token logprobs, built
 * on forward64's logits: log-softmax, KL(reference || candidate), argmax. Tests only.
 */
import { referenceLogits } from './forward64';

export interface RefTokenComparison {
  /** Per position t of every sequence (sequences concatenated): KL(p_ref(.|t) || p_cand(.|t)). */
  kl: Float64Array;
  /** log p(token t+1) under each model; NaN at each sequence's last position. */
  referenceLogprob: Float64Array;
  logprob: Float64Array;
  referenceArgmax: Int32Array;
  argmax: Int32Array;
  /** The gap between the two largest logits per row (argmax is ill-posed in f32 when tiny). */
  referenceTopGap: Float64Array;
  topGap: Float64Array;
}

/** log-softmax of each row of [T, vocab] logits. */
export function logSoftmax64(logits: Float64Array, vocab: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / vocab; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let top = Number.NEGATIVE_INFINITY;
    for (const v of row) if (v > top) top = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - top);
    const lse = top + Math.log(sum);
    for (let j = 0; j < vocab; j++) out[r * vocab + j] = row[j] - lse;
  }
  return out;
}

function argmaxAndGap(row: Float64Array): [number, number] {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  let second = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < row.length; j++) if (j !== best && row[j] > second) second = row[j];
  return [best, row[best] - second];
}

/** Compares `candidate` (skipping `candidateSkip`) with `reference` (skipping `referenceSkip`) on the same sequences. */
export function referenceComparison(
  reference: string, candidate: string, sequences: readonly (readonly number[])[],
  referenceSkip: readonly number[] = [], candidateSkip: readonly number[] = [],
): RefTokenComparison {
  const total = sequences.reduce((n, s) => n + s.length, 0);
  const out: RefTokenComparison = {
    kl: new Float64Array(total), referenceLogprob: new Float64Array(total), logprob: new Float64Array(total),
    referenceArgmax: new Int32Array(total), argmax: new Int32Array(total),
    referenceTopGap: new Float64Array(total), topGap: new Float64Array(total),
  };
  let row0 = 0;
  for (const seq of sequences) {
    const la = referenceLogits(reference, seq, referenceSkip);
    const lb = referenceLogits(candidate, seq, candidateSkip);
    const vocab = la.length / seq.length;
    if (lb.length !== la.length) throw new Error('reference: the two models have different vocabularies');
    const pa = logSoftmax64(la, vocab);
    const pb = logSoftmax64(lb, vocab);
    for (let t = 0; t < seq.length; t++) {
      const r = row0 + t;
      let kl = 0;
      for (let j = 0; j < vocab; j++) {
        const a = pa[t * vocab + j];
        kl += Math.exp(a) * (a - pb[t * vocab + j]);
      }
      out.kl[r] = kl;
      const next = t + 1 < seq.length ? seq[t + 1] : -1;
      out.referenceLogprob[r] = next >= 0 ? pa[t * vocab + next] : Number.NaN;
      out.logprob[r] = next >= 0 ? pb[t * vocab + next] : Number.NaN;
      [out.referenceArgmax[r], out.referenceTopGap[r]] = argmaxAndGap(la.subarray(t * vocab, (t + 1) * vocab));
      [out.argmax[r], out.topGap[r]] = argmaxAndGap(lb.subarray(t * vocab, (t + 1) * vocab));
    }
    row0 += seq.length;
  }
  return out;
}
