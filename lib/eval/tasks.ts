/**
 * Multiple-choice task accuracy, scored as lm-evaluation-harness 0.4.13 scores a
 * `multiple_choice` task with the default target_delimiter " ": each choice is a loglikelihood
 * request (context, " " + choice) encoded as lib/eval/encodePair.ts says, its loglikelihood is
 * the sum of the continuation tokens' log-probabilities; `acc` takes the argmax of those,
 * `acc_norm` the argmax of loglikelihood / the choice's length in characters
 * (lm_eval/api/task.py process_results), each with the standard error of a mean
 * (lm_eval/api/metrics.py mean_stderr: sample standard deviation / sqrt(n)).
 *
 * Every choice is one sequence (context + continuation), and all sequences of all items go
 * through the model together, one layer at a time, in batches of at most `batchTokens` computed
 * tokens, so the weights are read once per batch. Identical sequences run once, and requests with
 * the same context tokens share them (engine shared prefixes): the first is run whole, the others
 * only from their last context token on (that row predicts the continuation's first token), so
 * an item's context runs once (taskLogprobs.ts; the values are those of whole sequences).
 */
import * as path from 'node:path';
import type { Checkpoint } from '../checkpoint/types';
import { loadTokenizer } from '../data/tokenizer';
import type { EngineOptions } from '../engine/engineOptions';
import type { SharedPrefix } from '../engine/session';
import { ShortGptError } from '../errors';
import { resolveCheckpoint } from '../scoring/scoreLayers';
import { FILE_LIMITS, readTextLimited } from '../util/readLimited';
import { encodePair, requestSequence } from './encodePair';
import { engineLogprobs, type LogprobSource } from './taskLogprobs';
import { parseTaskFormat, taskItem, type TaskFormat, type TaskItem } from './taskFormats';

export type { TaskItem, TaskFormat } from './taskFormats';

/** A task as loaded: its name (the file's base name), where it came from, its items. */
export interface TaskSpec {
  /** The file's base name without .jsonl: what results and tables call the task. */
  name: string;
  /** The file it was read from. */
  file: string;
  /** The format its lines were read in (--task-format). */
  format: TaskFormat;
  /** Its items, in file order. */
  items: TaskItem[];
}

/** One item's result. */
export interface TaskItemResult {
  /** Per choice: the summed log-probability of " " + choice's tokens given the context. */
  loglikelihoods: number[];
  /** argmax of loglikelihoods (the first of equal maxima, as numpy's). */
  pred: number;
  /** argmax of loglikelihoods / choice length in characters. */
  predNorm: number;
  /** The right choice's index. */
  gold: number;
}

/** A task's accuracy. */
export interface TaskResult {
  /** The task's name (TaskSpec.name). */
  name: string;
  /** Items scored. */
  items: number;
  /** Fraction of items whose highest-loglikelihood choice is the gold one. */
  acc: number;
  /** Standard error of acc: sample standard deviation / sqrt(items) (NaN for one item). */
  accStderr: number;
  /** acc with each loglikelihood divided by its choice's length in characters. */
  accNorm: number;
  /** Standard error of accNorm. */
  accNormStderr: number;
  /** Per item, in file order. */
  results: TaskItemResult[];
}

/** Options of {@link evaluateTasks}. */
export interface TaskEvalOptions extends EngineOptions {
  /** Layers skipped at run time (the pruned model's answers without writing it). */
  skipLayers?: number[];
  /** Cancels between batches; rejects with ERR_ABORTED. */
  signal?: AbortSignal;
  /** After each batch of sequences: sequences scored so far and in all. */
  onProgress?: (p: { sequencesDone: number; sequencesTotal: number }) => void;
  /** Tokens per engine pass (default 65536): bounds memory only. */
  batchTokens?: number;
  /** Where the per-token log-probabilities come from (default: the engine). For tests. */
  logprobs?: LogprobSource;
}

/**
 * Reads a JSONL task file: one item per non-blank line, in `format` (default 'native':
 * {"context", "choices", "gold"}). ERR_TASK_FILE / ERR_TASK_ITEM name the file and line.
 */
export async function loadTaskFile(file: string, options: { format?: string } = {}): Promise<TaskSpec> {
  const format = parseTaskFormat(options.format ?? 'native');
  // Parsed whole, so bounded as other whole-file JSON data is (its errors name the file).
  let text: string;
  try {
    text = await readTextLimited(file, 'task file', FILE_LIMITS.wholeJsonData);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    throw new ShortGptError('ERR_TASK_FILE', `cannot read task file ${file}: ${(e as Error).message}`);
  }
  const items: TaskItem[] = [];
  // A UTF-8 byte order mark (some Windows exports) is not part of the first item.
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch (e) {
      throw new ShortGptError('ERR_TASK_ITEM', `${file} line ${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    items.push(taskItem(doc, format, `${file} line ${i + 1}`));
  }
  if (items.length === 0) throw new ShortGptError('ERR_TASK_FILE', `${file}: no items (expected one JSON object per line)`);
  return { name: path.basename(file).replace(/\.jsonl?$/i, ''), file, format, items };
}

/** numpy.argmax: the first maximum; a NaN wins (numpy propagates it). */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) return i;
    if (values[i] > values[best]) best = i;
  }
  return best;
}

/** mean and lm_eval's mean_stderr (sample standard deviation / sqrt(n); NaN for one item). */
export function meanAndStderr(xs: readonly number[]): { mean: number; stderr: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const ss = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
  return { mean, stderr: Math.sqrt(ss / (n - 1)) / Math.sqrt(n) };
}

/** Scores one item from its choices' loglikelihoods (process_results of a multiple_choice task). */
export function scoreItem(item: TaskItem, loglikelihoods: number[]): TaskItemResult {
  return {
    loglikelihoods,
    pred: argmax(loglikelihoods),
    // Python's len(): code points, not UTF-16 units (an emoji or a CJK extension character is 1, not 2).
    predNorm: argmax(loglikelihoods.map((ll, i) => ll / [...item.choices[i]].length)),
    gold: item.gold,
  };
}

/**
 * Accuracy of `model` on each task: every choice's loglikelihood as the harness computes it, then
 * acc and acc_norm with their standard errors. With `skipLayers`, the pruned model's.
 *
 * @example
 * const task = await loadTaskFile('assets/tasks/tinystories-next-sentence.jsonl');
 * const [r] = await evaluateTasks('assets/stories260k', [task], { skipLayers: [2] });
 * console.log(r.acc, r.accNorm);
 */
export async function evaluateTasks(model: Checkpoint | string, tasks: TaskSpec[], options: TaskEvalOptions = {}): Promise<TaskResult[]> {
  const ckpt = await resolveCheckpoint(model);
  const tok = await loadTokenizer(ckpt.dir);
  const maxLength = ckpt.config.maxPositionEmbeddings;
  // Every (task, item, choice) -> an index into the unique sequences, and how many of its last
  // predictions are scored.
  const unique = new Map<string, number>();
  const sequences: Int32Array[] = [];
  // Shared prefixes: per context (the tokens before the scored ones) the first sequence with it
  // is the root; later ones share all but its last token, whose row is the first one scored.
  const roots = new Map<string, number>();
  const links: Array<SharedPrefix | null> = [];
  const requests = tasks.map((t) =>
    t.items.map((item, ii) =>
      item.choices.map((choice, ci) => {
        const { sequence, scored } = requestSequence(encodePair(tok, item.context, ` ${choice}`), maxLength);
        const key = sequence.join(',');
        const needFrom = sequence.length - 1 - scored;  // the first row whose prediction is scored
        // A continuation longer than the model's window has predictions no row makes: its
        // loglikelihood would be NaN, which argmax picks (numpy's rule), silently counting it.
        if (needFrom < 0) {
          throw new ShortGptError('ERR_TASK_ITEM', `${t.file} item ${ii + 1}: choice ${ci} is ${scored} tokens, more than the ${maxLength} predictions the model's window (max_position_embeddings ${maxLength}) makes; shorten the choice`);
        }
        let index = unique.get(key);
        if (index === undefined) {
          index = sequences.length;
          unique.set(key, index);
          sequences.push(Int32Array.from(sequence));
          const context = sequence.slice(0, Math.max(0, needFrom + 1)).join(',');
          const root = needFrom >= 1 ? roots.get(context) : undefined;
          if (root === undefined && needFrom >= 0) roots.set(context, index);
          links.push(root === undefined ? null : { parent: root, length: needFrom });
        } else {
          // The same tokens split elsewhere (rare): keep every scored row computed.
          const l = links[index];
          if (l && needFrom < l.length) links[index] = needFrom >= 1 ? { parent: l.parent, length: needFrom } : null;
        }
        return { index, scored };
      }),
    ),
  );
  const logprobs = await (options.logprobs ?? engineLogprobs)(ckpt, sequences, { ...options, sharedPrefixes: links });
  const loglikelihood = (index: number, scored: number): number => {
    const lp = logprobs[index];
    const n = sequences[index].length;
    let sum = 0;
    for (let r = n - 1 - scored; r < n - 1; r++) sum += lp[r];
    return sum;
  };
  return tasks.map((t, ti) => {
    const results = t.items.map((item, ii) => scoreItem(item, requests[ti][ii].map((r) => loglikelihood(r.index, r.scored))));
    const acc = meanAndStderr(results.map((r) => (r.pred === r.gold ? 1 : 0)));
    const accNorm = meanAndStderr(results.map((r) => (r.predNorm === r.gold ? 1 : 0)));
    return { name: t.name, items: results.length, acc: acc.mean, accStderr: acc.stderr, accNorm: accNorm.mean, accNormStderr: accNorm.stderr, results };
  });
}
