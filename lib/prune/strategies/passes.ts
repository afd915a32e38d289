/**
 * Scoring and perplexity over batches of windows (--batch-tokens bounds the engine's activation
 * memory: one batch lives in a session at a time). Per-batch sums are added in batch order, so
 * a result differs from the one-batch result only by the rounding of that addition (~1e-16).
 * Progress is reported as work units of one token through one layer, across all batches.
 */
import type { NativeLastTokenStates } from '../../../binding';
import type { Checkpoint } from '../../checkpoint/types';
import type { EngineOptions } from '../../engine/engineOptions';
import { perplexity } from '../../eval/perplexity';
import { scoreLayers, type LayerScore, type LayerScores } from '../../scoring/scoreLayers';

export type Batch = ReadonlyArray<Int32Array>;

export interface WorkProgress {
  /** What runs: 'score', 'rescore', 'eval-before', 'eval-after'. */
  phase: string;
  /** The layer running (source index) and the model's layer count. */
  layer: number;
  layers: number;
  windowsDone: number;
  windowsTotal: number;
  /** Tokens pushed through one layer, done and in all, for rates and ETAs. */
  workDone: number;
  workTotal: number;
  /** Iterative strategy: the removal step (1-based). */
  step?: number;
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
 * Turns one batch's (layer, sequencesDone) callbacks into progress over all batches. `layersRun`
 * layers run per batch; `ordinal(layer)` is the position of a layer in that run.
 */
export class WorkTracker {
  private readonly totalWindows: number;
  private readonly totalTokens: number;
  private doneTokensBefore = 0;
  private doneWindowsBefore = 0;
  private prefix: number[] = [0];

  constructor(private readonly batches: readonly Batch[], private readonly layersRun: number, private readonly base: Omit<WorkProgress, 'layer' | 'windowsDone' | 'windowsTotal' | 'workDone' | 'workTotal'>, private readonly sink?: (p: WorkProgress) => void) {
    this.totalWindows = batches.reduce((s, b) => s + b.length, 0);
    this.totalTokens = batches.reduce((s, b) => s + batchTokens(b), 0);
  }

  startBatch(b: number): void {
    this.doneTokensBefore = 0;
    this.doneWindowsBefore = 0;
    for (let i = 0; i < b; i++) {
      this.doneTokensBefore += batchTokens(this.batches[i]);
      this.doneWindowsBefore += this.batches[i].length;
    }
    this.prefix = [0];
    for (const s of this.batches[b]) this.prefix.push(this.prefix[this.prefix.length - 1] + s.length);
  }

  /** `ordinal`: how many layers of this batch finished before this one. */
  update(layer: number, ordinal: number, sequencesDone: number): void {
    if (!this.sink) return;
    const batchTok = this.prefix[this.prefix.length - 1];
    const inLayer = this.prefix[Math.min(sequencesDone, this.prefix.length - 1)];
    this.sink({
      ...this.base,
      layer,
      windowsDone: this.doneWindowsBefore + sequencesDone,
      windowsTotal: this.totalWindows,
      workDone: this.doneTokensBefore * this.layersRun + ordinal * batchTok + inLayer,
      workTotal: this.totalTokens * this.layersRun,
    });
  }

  get active(): boolean {
    return this.sink !== undefined;
  }
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
  for (let b = 0; b < batches.length; b++) {
    tracker.startBatch(b);
    const r = await scoreLayers(ckpt, batches[b], {
      ...opts.engine,
      signal: opts.signal,
      keepLastTokenStates: opts.keepLastTokenStates,
      onProgress: tracker.active ? (p) => tracker.update(p.layer, p.layer, p.sequencesDone) : undefined,
    });
    sums = addLayerScores(sums, r.layers);
    if (r.lastTokenStates) states.push(r.lastTokenStates);
    tokens += r.tokens;
    sequences += r.sequences;
  }
  return {
    model: ckpt.dir,
    tokens,
    sequences,
    layers: sums ?? [],
    lastTokenStates: states.length ? mergeLastTokenStates(states) : undefined,
  };
}

export interface BatchedPerplexity {
  perplexity: number;
  meanNll: number;
  predictions: number;
  tokens: number;
  skipLayers: number[];
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
  for (let b = 0; b < batches.length; b++) {
    tracker.startBatch(b);
    const r = await perplexity(ckpt, batches[b], {
      ...opts.engine,
      skipLayers: skip,
      signal: opts.signal,
      onProgress: tracker.active ? (p) => tracker.update(p.layer, run.indexOf(p.layer), p.sequencesDone) : undefined,
    });
    sumNll += r.meanNll * r.predictions;
    predictions += r.predictions;
    tokens += r.tokens;
  }
  const meanNll = sumNll / predictions;
  return { perplexity: Math.exp(meanNll), meanNll, predictions, tokens, skipLayers: [...skip].sort((a, b) => a - b) };
}
