/** What every removal strategy returns: the layers, why each, and the strategy's own trace. */
import type { BlockChoice, IterationStep } from '../../report/types';

/** What a removal strategy chose: the layers, why each, and the strategy's own trace. */
export interface StrategyResult {
  /** Source layer indices to delete, ascending. */
  removed: number[];
  /** Per removed layer, the strategy's explanation (report.json `reason`). */
  reasons: Record<number, string>;
  /** Iterative: one entry per removal. */
  iterations?: IterationStep[];
  /** Block: the chosen block and every candidate. */
  block?: BlockChoice;
}
