/**
 * With --heal and --eval, the perplexity "after" in every summary (prune's stdout, report.md, the
 * model card) is the healed model's, as written, while KL / top-1 agreement and a quality curve
 * are of plain deletion (layers skipped at run time): this says so where the number is shown.
 */
import type { HealReport } from '../prune/heal';

/** '' without a healed perplexity; else a clause naming the healed model and giving plain deletion's perplexity. */
export function healedText(perplexity: HealReport['perplexity'], digits: number): string {
  return perplexity ? `; after = the healed model, plain deletion ${perplexity.plain.toFixed(digits)}` : '';
}
