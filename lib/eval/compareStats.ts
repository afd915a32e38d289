/**
 * The arithmetic of a paired comparison (eval --compare): per-token KL(reference || candidate),
 * both models' next-token logprobs and argmaxes (from the engine's divergence pass) reduced to
 * perplexities, mean and 95th-percentile KL and top-1 agreement, per window and pooled. Only
 * positions that predict a token (each window's last position does not) count, so
 * `predictions` is the perplexity's count.
 */
import type { NativeDivergence } from '../../binding';

/** Perplexity of both models, and how far the candidate's next-token distributions are from the reference's. */
export interface ComparisonStats {
  /** exp(mean next-token NLL) of each model over the positions compared. */
  perplexity: { reference: number; candidate: number };
  /** Mean next-token negative log-likelihood of each model, in nats. */
  meanNll: { reference: number; candidate: number };
  /** KL(reference || candidate) of the next-token distributions, in nats: mean and 95th percentile over positions. */
  kl: { mean: number; p95: number };
  /** Share of positions where both models' most likely next token is the same. */
  top1Agreement: number;
  /** Positions compared (each predicting a token). */
  predictions: number;
  /** Tokens run through each model. */
  tokens: number;
}

/** The comparison's statistics for one window. */
export interface WindowComparison extends ComparisonStats {
  /** The window's index among all windows compared. */
  window: number;
}

/**
 * The q-quantile of `values` with linear interpolation between closest ranks (numpy's default
 * `percentile` method): sorted[(n - 1) q], interpolated. Sorts `values` in place; NaN for none.
 */
export function quantile(values: Float64Array, q: number): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  values.sort();
  const at = (n - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(n - 1, lo + 1);
  return values[lo] + (values[hi] - values[lo]) * (at - lo);
}

/**
 * Sums over the windows of one or more engine sessions (batches), in row order. The pooled
 * perplexity is pooled as perplexityBatches pools batches (each batch's sum of NLL, whose terms
 * are the engine's nll() terms bit for bit), so a comparison's candidate perplexity equals
 * `eval`'s on the same windows.
 */
export class ComparisonAccumulator {
  private readonly windows: WindowComparison[] = [];
  private readonly kls: number[] = [];
  private sumNllRef = 0;
  private sumNllCand = 0;
  private agree = 0;
  private predictions = 0;
  private tokens = 0;

  /** Adds one session's result: `lengths` are its sequences' lengths, in order. */
  add(d: NativeDivergence, lengths: readonly number[]): void {
    let row = 0;
    let batchRef = 0;
    let batchCand = 0;
    let batchPred = 0;
    for (const len of lengths) {
      let wRef = 0;
      let wCand = 0;
      let wAgree = 0;
      let wKl = 0;
      const wKls = new Float64Array(Math.max(0, len - 1));
      for (let p = 0; p + 1 < len; p++) {
        const r = row + p;
        wRef -= d.referenceLogprob[r];
        wCand -= d.logprob[r];
        wKl += d.kl[r];
        wKls[p] = d.kl[r];
        if (d.argmax[r] === d.referenceArgmax[r]) wAgree++;
      }
      // Row-order sums for the batch (the engine's sumNll order); window sums are separate.
      for (let p = 0; p + 1 < len; p++) {
        batchRef -= d.referenceLogprob[row + p];
        batchCand -= d.logprob[row + p];
        this.kls.push(d.kl[row + p]);
      }
      const n = len - 1;
      batchPred += Math.max(0, n);
      this.agree += wAgree;
      this.tokens += len;
      if (n > 0) {
        this.windows.push({
          window: this.windows.length,
          perplexity: { reference: Math.exp(wRef / n), candidate: Math.exp(wCand / n) },
          meanNll: { reference: wRef / n, candidate: wCand / n },
          kl: { mean: wKl / n, p95: quantile(wKls, 0.95) },
          top1Agreement: wAgree / n,
          predictions: n,
          tokens: len,
        });
      } else {
        this.windows.push({
          window: this.windows.length, perplexity: { reference: Number.NaN, candidate: Number.NaN }, meanNll: { reference: Number.NaN, candidate: Number.NaN },
          kl: { mean: Number.NaN, p95: Number.NaN }, top1Agreement: Number.NaN, predictions: 0, tokens: len,
        });
      }
      row += len;
    }
    if (batchPred > 0) {
      // As perplexityBatches: meanNll of the batch times its predictions.
      this.sumNllRef += (batchRef / batchPred) * batchPred;
      this.sumNllCand += (batchCand / batchPred) * batchPred;
    }
    this.predictions += batchPred;
  }

  /** The pooled statistics and the per-window ones. */
  result(): ComparisonStats & { perWindow: WindowComparison[] } {
    const n = this.predictions;
    const kls = Float64Array.from(this.kls);
    let klSum = 0;
    for (const k of kls) klSum += k;
    const meanNll = { reference: this.sumNllRef / n, candidate: this.sumNllCand / n };
    return {
      perplexity: { reference: Math.exp(meanNll.reference), candidate: Math.exp(meanNll.candidate) },
      meanNll,
      kl: { mean: klSum / n, p95: quantile(kls, 0.95) },
      top1Agreement: this.agree / n,
      predictions: n,
      tokens: this.tokens,
      perWindow: this.windows,
    };
  }
}
