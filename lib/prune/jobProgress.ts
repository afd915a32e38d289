/**
 * One fraction and one ETA for a whole job (prune: tokenize -> score -> re-score passes -> quality
 * curve -> heal -> perplexity before/after/healed -> rewrite), so progress never restarts at 0% when
 * a phase changes.
 *
 * The plan lists the job's phases in order, each with an estimate of its work in its own unit:
 * bytes of text to tokenize, token-layers to compute (one token through one layer), bytes to
 * write. Units of different kinds are made comparable by their cost in seconds per unit: a prior
 * from the model's size until the run has measured its own speed, then the measured rate
 * (blended, so the switch does not jump). The fraction is time done / (time done + time left) in
 * those costs, which is also what the ETA is; it is held at its highest value, so it never
 * decreases, and estimates are replaced by the true totals as each phase reports them.
 *
 * Progress callbacks from the native engine arrive through a thread-safe queue and can be
 * delivered after the next phase or batch has begun; an event for an earlier phase, or for less
 * work than already reported in its phase, is stale and `report` returns false so it is dropped.
 */
import * as os from 'node:os';
import { layerTensors } from '../checkpoint/checkpoint';
import type { Checkpoint } from '../checkpoint/types';
import type { TokenizeProgress } from '../data/sources';
import type { EngineOptions } from '../engine/engineOptions';
import type { WorkProgress } from './strategies/passes';

export type WorkKind = 'tokenize' | 'compute' | 'write';

export interface PlannedPhase {
  /** The phase as events name it: WorkProgress.phase, with `-step` for iterative re-scoring ('rescore-2'). */
  id: string;
  kind: WorkKind;
  /** Estimated work in the kind's unit; replaced by the phase's own total once it reports. */
  units: number;
}

export interface JobStatus {
  /** Share of the whole job done, 0..1; never decreases. */
  fraction: number;
  /** Estimated seconds left for the whole job; NaN until the run has measured some of its speed. */
  etaSeconds: number;
  /** Seconds since the job began. */
  elapsedSeconds: number;
}

/** Seconds per unit before anything is measured. */
export type KindCosts = Record<WorkKind, number>;

/** Priors: the tokenizer encodes ~0.8 MB/s (measured, TinyStories text); rewriting copies ~1 GB/s. */
export const DEFAULT_TOKENIZE_SECONDS_PER_BYTE = 1.3e-6;
export const DEFAULT_WRITE_SECONDS_PER_BYTE = 1e-9;
/** Seconds of measurement that weigh as much as the prior: the prior fades out over the first ~second of a kind. */
const PRIOR_WEIGHT_SECONDS = 0.5;
/** No ETA before this much of the job has run: the first events only time start-up. */
const MIN_ETA_SECONDS = 1;

interface PhaseState extends PlannedPhase {
  done: number;
  started: boolean;
}

export class JobTracker {
  private readonly phases: PhaseState[];
  private current = -1;
  private readonly seconds: Record<WorkKind, number> = { tokenize: 0, compute: 0, write: 0 };
  private readonly units: Record<WorkKind, number> = { tokenize: 0, compute: 0, write: 0 };
  private readonly t0: number;
  private lastT: number;
  private shown = 0;
  private finished = false;

  constructor(plan: readonly PlannedPhase[], private readonly priors: KindCosts, private readonly now: () => number = () => performance.now() / 1000) {
    this.phases = plan.map((p) => ({ ...p, units: Math.max(0, p.units), done: 0, started: false }));
    this.t0 = now();
    this.lastT = this.t0;
  }

  /** Replaces the estimate of a phase that has not begun (once it has, its own totals count). */
  revise(id: string, units: number): void {
    const p = this.phases.find((q) => q.id === id);
    if (p && !p.started) p.units = Math.max(0, units);
  }

  /**
   * `done` of `total` units in phase `id`. Earlier phases count as complete from the first event
   * of a later one. Returns false for a stale event (see the file comment); an id outside the
   * plan is accepted and changes nothing.
   */
  report(id: string, done: number, total: number): boolean {
    const i = this.phases.findIndex((q) => q.id === id);
    if (i < 0) return !this.finished;
    if (this.finished || i < this.current) return false;
    const t = this.now();
    const p = this.phases[i];
    if (i > this.current) {
      for (let k = Math.max(0, this.current); k < i; k++) this.complete(this.phases[k]);
      this.current = i;
    }
    if (Number.isFinite(total) && total >= 0) p.units = total;
    const d = Math.min(Math.max(0, done), p.units);
    if (p.started && d < p.done) return false;
    // The time since the last accepted event went into this phase's kind (its start-up included).
    this.seconds[p.kind] += t - this.lastT;
    this.units[p.kind] += d - p.done;
    this.lastT = t;
    p.done = d;
    p.started = true;
    return true;
  }

  /** The job is over: 100%, and later (stale) events are refused. */
  finish(): void {
    for (const p of this.phases) this.complete(p);
    this.finished = true;
  }

  private complete(p: PhaseState): void {
    p.done = p.units;
    p.started = true;
  }

  /** Seconds per unit of a kind: the measured rate, with the prior weighing as PRIOR_WEIGHT_SECONDS of measurement. */
  costOf(kind: WorkKind): number {
    const prior = this.priors[kind];
    const priorUnits = prior > 0 ? PRIOR_WEIGHT_SECONDS / prior : 0;
    const units = this.units[kind] + priorUnits;
    return units > 0 ? (this.seconds[kind] + (prior > 0 ? PRIOR_WEIGHT_SECONDS : 0)) / units : prior;
  }

  status(): JobStatus {
    const elapsed = this.now() - this.t0;
    let doneSec = 0;
    let leftSec = 0;
    for (const p of this.phases) {
      const c = this.costOf(p.kind);
      doneSec += p.done * c;
      leftSec += (p.units - p.done) * c;
    }
    const raw = this.finished ? 1 : doneSec + leftSec > 0 ? doneSec / (doneSec + leftSec) : 0;
    this.shown = Math.min(1, Math.max(this.shown, raw));
    return { fraction: this.shown, etaSeconds: this.finished ? 0 : elapsed >= MIN_ETA_SECONDS ? leftSec : Number.NaN, elapsedSeconds: elapsed };
  }
}

/** The job id of a progress event: its phase, with the re-scoring step. */
export function phaseId(p: Pick<WorkProgress, 'phase' | 'step'>): string {
  return p.step !== undefined ? `${p.phase}-${p.step}` : p.phase;
}

/**
 * A progress sink that runs events through `tracker`: stale ones are dropped, the rest reach
 * `sink` with the job's status attached.
 */
export function trackJob(tracker: JobTracker, sink: ((p: WorkProgress) => void) | undefined): ((p: WorkProgress) => void) | undefined {
  if (!sink) return undefined;
  return (p) => {
    if (tracker.report(phaseId(p), p.workDone, p.workTotal)) sink({ ...p, job: tracker.status() });
  };
}

/**
 * Prior seconds per token-layer: the layer's multiply-adds (2 flops per parameter, plus
 * attention over a window: ~2 x seqLen x hidden) at 10 GFLOP/s per CPU thread or 10 TFLOP/s on
 * a GPU (well below the engine's GEMM speed, since small layers are overhead-bound). Only the
 * first ~second of scoring relies on it.
 */
export function computeSecondsPerTokenLayer(ckpt: Checkpoint, engine: EngineOptions, seqLen = 256): number {
  let params = 0;
  if (ckpt.config.numHiddenLayers > 0) for (const t of layerTensors(ckpt, 0).values()) params += t.shape.reduce((a, b) => a * b, 1);
  const flops = 2 * params + 2 * seqLen * ckpt.config.hiddenSize;
  const rate = engine.device === 'cuda' ? 1e13 : 1e10 * Math.max(1, engine.threads ?? os.availableParallelism());
  return flops / rate;
}

/** Priors for a job on this checkpoint and engine. */
export function jobPriors(ckpt: Checkpoint, engine: EngineOptions, seqLen?: number): KindCosts {
  return { tokenize: DEFAULT_TOKENIZE_SECONDS_PER_BYTE, compute: computeSecondsPerTokenLayer(ckpt, engine, seqLen), write: DEFAULT_WRITE_SECONDS_PER_BYTE };
}

/** Tokens a text of `bytes` bytes is expected to give before it is tokenized (~4 bytes a token in English BPE), at most `cap`. */
export function estimateTokens(bytes: number, cap = Number.POSITIVE_INFINITY): number {
  return Math.min(Math.ceil(bytes / 4), cap);
}

/** What a prune job will do, for its plan. */
export interface PruneJobShape {
  numLayers: number;
  /** Iterative: one re-scoring pass per removed layer. */
  iterative: boolean;
  /** Layers removed. */
  count: number;
  /** Held-out data given (perplexity before and after), and its text's own tokenize phase. */
  evaluate: boolean;
  /** Bytes the rewrite will copy; 0 for a dry run (no rewrite). */
  writeBytes: number;
  /**
   * A quality bound: the number of candidate cuts its curve measures (k = 1..curve layers) on the
   * held-out data, which is then tokenized even in a dry run; 0 or absent: none.
   */
  curve?: number;
  /**
   * --heal: layers the capture pass runs over the calibration windows (up to the last removed
   * layer: numLayers until the cut is known, then healPassLayers); 0 or absent: no heal pass.
   */
  healLayers?: number;
}

/**
 * Layer runs of the quality curve over `cuts` candidate cuts, per token: the dense pass, then each
 * cut of k layers at most its numLayers - k layers (fewer when it resumes from a snapshot). An
 * upper bound: the pass reports its true total when it begins.
 */
export function curveLayerRuns(numLayers: number, cuts: number): number {
  let runs = numLayers;
  for (let k = 1; k <= cuts; k++) runs += Math.max(0, numLayers - k);
  return runs;
}

/**
 * The phases of a prune, with the token counts known so far (estimates before tokenizing). A
 * re-scoring pass k runs at most the numLayers - k layers still present (fewer when it restarts
 * from a snapshot); the pass reports its true total when it begins.
 */
export function prunePhases(job: PruneJobShape, calibTokens: number, evalTokens: number, textBytes: { calib?: number; eval?: number } = {}): PlannedPhase[] {
  const L = job.numLayers;
  const curve = job.curve ?? 0;
  const healLayers = job.healLayers ?? 0;
  const phases: PlannedPhase[] = [{ id: 'tokenize', kind: 'tokenize', units: textBytes.calib ?? 0 }];
  if (job.evaluate || curve > 0) phases.push({ id: 'tokenize-eval', kind: 'tokenize', units: textBytes.eval ?? 0 });
  phases.push({ id: 'score', kind: 'compute', units: calibTokens * L });
  if (job.iterative) for (let k = 1; k <= job.count; k++) phases.push({ id: `rescore-${k}`, kind: 'compute', units: calibTokens * Math.max(0, L - k) });
  if (curve > 0) phases.push({ id: 'eval-curve', kind: 'compute', units: evalTokens * curveLayerRuns(L, curve) });
  if (healLayers > 0) phases.push({ id: 'heal', kind: 'compute', units: calibTokens * healLayers });
  if (job.evaluate) {
    phases.push({ id: 'eval-before', kind: 'compute', units: evalTokens * L });
    phases.push({ id: 'eval-after', kind: 'compute', units: evalTokens * Math.max(0, L - job.count) });
    // The healed model, evaluated as written (its patched down_proj), the removed layers skipped.
    if (healLayers > 0) phases.push({ id: 'eval-healed', kind: 'compute', units: evalTokens * Math.max(0, L - job.count) });
  }
  if (job.writeBytes > 0) phases.push({ id: 'rewrite', kind: 'write', units: job.writeBytes });
  return phases;
}

/** Replaces the estimates of the phases not yet begun. */
export function revisePlan(tracker: JobTracker, phases: readonly PlannedPhase[]): void {
  for (const p of phases) tracker.revise(p.id, p.units);
}

/** The tokenizer's progress as a job event (workDone/workTotal: bytes of text). */
export function tokenizeEvent(phase: 'tokenize' | 'tokenize-eval', layers: number, t: TokenizeProgress): WorkProgress {
  return { phase, layer: -1, layers, windowsDone: 0, windowsTotal: 0, workDone: t.bytesDone, workTotal: t.bytesTotal, documentsDone: t.documentsDone, documentsTotal: t.documentsTotal };
}

/**
 * A promise that lets the event loop run (signals, a terminal's resize) at most every `ms`
 * milliseconds, for callers of a long synchronous loop (the tokenizer); undefined in between.
 */
export function yieldEvery(ms = 100): () => Promise<void> | undefined {
  let last = performance.now();
  return () => {
    const now = performance.now();
    if (now - last < ms) return undefined;
    last = now;
    return new Promise((resolve) => setImmediate(resolve));
  };
}

/**
 * The tokenizer's progress callback for a job: each event goes to `sink`, and every 25 ms the
 * event loop gets a turn first (see yieldEvery), so a frame is drawn with the terminal's
 * current width: a resize reaches the program as an event, which a synchronous loop would hold.
 */
export function tokenizeReporter(phase: 'tokenize' | 'tokenize-eval', layers: number, sink: (p: WorkProgress) => void): (t: TokenizeProgress) => Promise<void> | undefined {
  const pause = yieldEvery(25);
  return (t) => {
    const paused = pause();
    if (!paused) {
      sink(tokenizeEvent(phase, layers, t));
      return undefined;
    }
    return paused.then(() => sink(tokenizeEvent(phase, layers, t)));
  };
}
