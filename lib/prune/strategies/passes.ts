/**
 * Scoring and perplexity over batches of windows (--batch-tokens bounds the engine's activation
 * memory: one batch lives in a session at a time). Per-batch sums are added in batch order, so
 * a result differs from the one-batch result only by the rounding of that addition (~1e-16).
 * Progress is reported as work units of one token through one layer, across all batches.
 */
import type { NativeLastTokenStates } from '../../../binding';
import type { Checkpoint } from '../../checkpoint/types';
import type { EngineOptions } from '../../engine/engineOptions';
import { ShortGptError } from '../../errors';
import { perplexity } from '../../eval/perplexity';
import { scoreLayers, type LayerScore, type LayerScores } from '../../scoring/scoreLayers';
import { concatPerWindow } from '../../scoring/bootstrap';

export type Batch = ReadonlyArray<Int32Array>;

export interface WorkProgress {
  /**
   * What runs: 'tokenize' / 'tokenize-eval' (workDone/workTotal: bytes of text), 'score',
   * 'rescore', 'eval-before', 'eval-after', 'eval', 'eval-curve' (a quality bound's curve), 'heal'
   * (the heal pass), 'eval-healed' (token-layers), 'rewrite' (bytes written).
   */
  phase: string;
  /** The layer running (source index; -1 outside a layer pass) and the model's layer count. */
  layer: number;
  layers: number;
  /** Windows through the running layer (restarts with each layer), of all the pass's windows. */
  windowsDone: number;
  windowsTotal: number;
  /** Work done and in all for this phase, in the phase's unit; never decreases within a phase. */
  workDone: number;
  workTotal: number;
  /** Iterative strategy: the removal step (1-based), and how many there are. */
  step?: number;
  steps?: number;
  /** Passes over several batches (--batch-tokens): the batch running (0-based) and how many. */
  batch?: number;
  batches?: number;
  /** Tokenizing: documents done and in all. */
  documentsDone?: number;
  documentsTotal?: number;
  /** The whole job this phase belongs to (prune, score --calib, eval --data): see lib/prune/jobProgress.ts. */
  job?: { fraction: number; etaSeconds: number; elapsedSeconds: number };
}

export interface PassOptions {
  /** Where and how every session of the pass computes (threads, device). */
  engine?: EngineOptions;
  signal?: AbortSignal;
  onProgress?: (p: WorkProgress) => void;
}

export function batchTokens(batch: Batch): number {
  let n = 0;
  for (const s of batch) n += s.length;
  return n;
}

/**
 * Turns each batch's per-layer (sequencesDone) callbacks into progress over the whole pass:
 * `layersRun` layers run per batch, and work is token-layers. The native engine delivers its
 * callbacks through a queue, so one can arrive after its layer's promise resolved and the next
 * batch began: each callback therefore captures its own batch and layer (`callback`), and one
 * that reports less work than already reported is old news and is dropped. So workDone never
 * decreases and windowsDone never exceeds windowsTotal.
 */
export class WorkTracker {
  private readonly totalWindows: number;
  private readonly totalTokens: number;
  private readonly tokensBefore: number[] = [];
  private readonly windowsBefore: number[] = [];
  /** Per batch: tokens in its first k sequences, k = 0..length. */
  private readonly prefixes: number[][] = [];
  private reported = -1;

  constructor(batches: readonly Batch[], private readonly layersRun: number, private readonly base: Omit<WorkProgress, 'layer' | 'windowsDone' | 'windowsTotal' | 'workDone' | 'workTotal'>, private readonly sink?: (p: WorkProgress) => void) {
    let tokens = 0;
    let windows = 0;
    for (const b of batches) {
      this.tokensBefore.push(tokens);
      this.windowsBefore.push(windows);
      const prefix = [0];
      for (const s of b) prefix.push(prefix[prefix.length - 1] + s.length);
      this.prefixes.push(prefix);
      tokens += prefix[prefix.length - 1];
      windows += b.length;
    }
    this.totalWindows = windows;
    this.totalTokens = tokens;
  }

  get active(): boolean {
    return this.sink !== undefined;
  }

  get workTotal(): number {
    return this.totalTokens * this.layersRun;
  }

  /** The callback for batch `b`'s run of `layer`, the `ordinal`-th layer run in each batch. */
  callback(b: number, layer: number, ordinal: number): ((sequencesDone: number) => void) | undefined {
    if (!this.sink) return undefined;
    const prefix = this.prefixes[b];
    const batchTok = prefix[prefix.length - 1];
    const o = Math.min(Math.max(0, ordinal), Math.max(0, this.layersRun - 1));
    return (sequencesDone) => {
      const seqs = Math.min(Math.max(0, sequencesDone), prefix.length - 1);
      this.emit(layer, b, this.windowsBefore[b] + seqs, this.tokensBefore[b] * this.layersRun + o * batchTok + prefix[seqs]);
    };
  }

  /** Reports the pass as begun (before the first layer's weights load, which can take a while). */
  start(firstLayer: number): void {
    this.emit(firstLayer, 0, 0, 0);
  }

  /** Reports the pass as complete (the engine's last callbacks may still be in its queue). */
  finish(lastLayer: number): void {
    this.emit(lastLayer, Math.max(0, this.prefixes.length - 1), this.totalWindows, this.workTotal);
  }

  private emit(layer: number, batch: number, windowsDone: number, workDone: number): void {
    if (!this.sink || workDone < this.reported) return;
    this.reported = workDone;
    this.sink({
      ...this.base,
      layer,
      windowsDone: Math.min(windowsDone, this.totalWindows),
      windowsTotal: this.totalWindows,
      workDone: Math.min(workDone, this.workTotal),
      workTotal: this.workTotal,
      ...(this.prefixes.length > 1 ? { batch, batches: this.prefixes.length } : {}),
    });
  }
}

/**
 * The engine names a NaN/Inf position by its sequence within the session it ran, which is one
 * batch of windows: say which window of the whole pass that is. `batchNoun` names the data the
 * batches came from ("calibration batch", "--eval data batch").
 */
export function inWindowTerms(e: unknown, batches: readonly Batch[], b: number, batchNoun = 'calibration batch'): unknown {
  if (!(e instanceof ShortGptError) || !e.code.startsWith('ERR_NONFINITE')) return e;
  let first = 0;
  for (let i = 0; i < b; i++) first += batches[i].length;
  const batchNote = batches.length > 1 ? ` (sequence $1 of ${batchNoun} ${b + 1} of ${batches.length})` : '';
  const message = e.message.replace(/\bsequence (\d+),/, (_all, s: string) => `window ${first + Number(s)}${batchNote.replace('$1', s)},`);
  return message === e.message ? e : new ShortGptError(e.code, message, { cause: e });
}

/** Adds one batch's per-layer sums into the running totals (same layer order). */
export function addLayerScores(into: LayerScore[] | undefined, add: readonly LayerScore[]): LayerScore[] {
  if (!into) return add.map((l) => ({ ...l }));
  return into.map((a, i) => {
    const b = add[i];
    const tokens = a.tokens + b.tokens;
    const sumCos = a.sumCos + b.sumCos;
    const sumAngular = a.sumAngular + b.sumAngular;
    const sumRelMag = a.sumRelMag + b.sumRelMag;
    return {
      layer: a.layer,
      tokens,
      blockInfluence: 1 - sumCos / tokens,
      angularDistance: sumAngular / tokens,
      relativeMagnitude: sumRelMag / tokens,
      nanCount: a.nanCount + b.nanCount,
      sumCos,
      sumAngular,
      sumRelMag,
      ...(a.perWindow && b.perWindow ? { perWindow: concatPerWindow(a.perWindow, b.perWindow) } : {}),
    };
  });
}

/** Concatenates per-batch last-token states along the sequence axis. */
function mergeLastTokenStates(parts: readonly NativeLastTokenStates[]): NativeLastTokenStates {
  const first = parts[0];
  const entries = first.layers.length;
  const hidden = first.hiddenSize;
  const sequences = parts.reduce((s, p) => s + p.sequences, 0);
  const data = new Float32Array(entries * sequences * hidden);
  let seqOffset = 0;
  for (const p of parts) {
    for (let e = 0; e < entries; e++) {
      data.set(p.data.subarray(e * p.sequences * hidden, (e + 1) * p.sequences * hidden), (e * sequences + seqOffset) * hidden);
    }
    seqOffset += p.sequences;
  }
  return { sequences, hiddenSize: hidden, layers: [...first.layers], data };
}

/** Every layer's scores on the full model, batch by batch. */
export async function scoreBatches(ckpt: Checkpoint, batches: readonly Batch[], opts: PassOptions & { keepLastTokenStates?: boolean }): Promise<LayerScores> {
  const layers = ckpt.config.numHiddenLayers;
  const tracker = new WorkTracker(batches, layers, { phase: 'score', layers }, opts.onProgress);
  let sums: LayerScore[] | undefined;
  const states: NativeLastTokenStates[] = [];
  let tokens = 0;
  let sequences = 0;
  tracker.start(0);
  for (let b = 0; b < batches.length; b++) {
    const r = await scoreLayers(ckpt, batches[b], {
      ...opts.engine,
      signal: opts.signal,
      keepLastTokenStates: opts.keepLastTokenStates,
      onProgress: tracker.active ? (p) => tracker.callback(b, p.layer, p.layer)?.(p.sequencesDone) : undefined,
    }).catch((e: unknown) => {
      throw inWindowTerms(e, batches, b);
    });
    sums = addLayerScores(sums, r.layers);
    if (r.lastTokenStates) states.push(r.lastTokenStates);
    tokens += r.tokens;
    sequences += r.sequences;
  }
  tracker.finish(layers - 1);
  return {
    model: ckpt.dir,
    tokens,
    sequences,
    layers: sums ?? [],
    lastTokenStates: states.length ? mergeLastTokenStates(states) : undefined,
  };
}

/** Perplexity over every batch of windows (what `prune` reports before and after the cut). */
export interface BatchedPerplexity {
  /** exp(meanNll). */
  perplexity: number;
  /** Mean next-token negative log-likelihood over all batches, in nats. */
  meanNll: number;
  /** Next-token predictions scored: the sum over windows of (length - 1). */
  predictions: number;
  /** Tokens run through the model. */
  tokens: number;
  /** Layers skipped at run time (the pruned model's), ascending. */
  skipLayers: number[];
}

/** What the batches of a perplexity phase are called in errors: `eval --data`'s, or prune's --eval data. */
export function perplexityBatchNoun(phase: string): string {
  return phase.startsWith('eval-') ? '--eval data batch' : 'data batch';
}

/** Perplexity pooled over batches: exp(sum of NLL / predictions over all of them). */
export async function perplexityBatches(ckpt: Checkpoint, batches: readonly Batch[], phase: string, opts: PassOptions & { skipLayers?: number[] }): Promise<BatchedPerplexity> {
  const skip = opts.skipLayers ?? [];
  const layers = ckpt.config.numHiddenLayers;
  const run = Array.from({ length: layers }, (_, l) => l).filter((l) => !skip.includes(l));
  const tracker = new WorkTracker(batches, run.length, { phase, layers }, opts.onProgress);
  let sumNll = 0;
  let predictions = 0;
  let tokens = 0;
  tracker.start(run[0] ?? 0);
  for (let b = 0; b < batches.length; b++) {
    const r = await perplexity(ckpt, batches[b], {
      ...opts.engine,
      skipLayers: skip,
      signal: opts.signal,
      onProgress: tracker.active ? (p) => tracker.callback(b, p.layer, run.indexOf(p.layer))?.(p.sequencesDone) : undefined,
    }).catch((e: unknown) => {
      throw inWindowTerms(e, batches, b, perplexityBatchNoun(phase));
    });
    sumNll += r.meanNll * r.predictions;
    predictions += r.predictions;
    tokens += r.tokens;
  }
  tracker.finish(run[run.length - 1] ?? 0);
  const meanNll = sumNll / predictions;
  return { perplexity: Math.exp(meanNll), meanNll, predictions, tokens, skipLayers: [...skip].sort((a, b) => a - b) };
}
