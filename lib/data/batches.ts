/**
 * Windows -> batches of at most `batchTokens` tokens (--batch-tokens), to bound the engine's
 * activation memory. Greedy in order: windows are never reordered, split or dropped, so the
 * concatenation of the batches is exactly the input and scores cannot depend on the budget. A
 * window longer than the budget forms a batch on its own.
 */
import { UsageError } from '../errors';

/** Groups windows, in order, into batches of at most `batchTokens` tokens (a longer window is a batch alone). */
export function batchWindows<W extends { ids: ArrayLike<number> }>(windows: readonly W[], batchTokens: number): W[][] {
  if (!Number.isSafeInteger(batchTokens) || batchTokens < 1) {
    throw new UsageError(`--batch-tokens must be a positive integer, got ${batchTokens}`);
  }
  const batches: W[][] = [];
  let current: W[] = [];
  let used = 0;
  for (const w of windows) {
    const n = w.ids.length;
    if (current.length > 0 && used + n > batchTokens) {
      batches.push(current);
      current = [];
      used = 0;
    }
    current.push(w);
    used += n;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
