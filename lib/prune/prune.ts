/**
 * The whole job as one typed function: load calibration data -> windows -> score every layer ->
 * choose layers by a strategy -> (dry run: stop with the plan) -> perplexity before and after
 * on held-out data -> rewrite the checkpoint without the chosen layers, with report.json,
 * report.md and chart.svg written inside the rewrite's temporary directory, so OUT appears
 * complete, report included, or not at all.
 *
 * Every check a user can fail (data, options, output placement) runs before the first layer is
 * scored, and nothing is written before the rewrite.
 */
import * as path from 'node:path';
import { layerTensors, openCheckpoint } from '../checkpoint/checkpoint';
import type { Checkpoint } from '../checkpoint/types';
import { loadBinding } from '../engine/binding';
import { resolveDevice } from '../engine/device';
import { checkEngineOptions, engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { ShortGptError } from '../errors';
import { buildReport, toMetricScores } from '../report/buildReport';
import { checkpointMergekitDtype } from '../report/cuts';
import { reportFiles } from '../report/files';
import type { Metric, PruneReport, Strategy } from '../report/types';
import type { TokenizeProgress } from '../data/sources';
import { describeCalibration } from '../data/windows';
import { plural } from '../util/format';
import type { LayerScore } from '../scoring/scoreLayers';
import { checkOutputPlacement, checkOutputVacancy } from './atomicOutput';
import { calibrationWarnings, loadWindows, tokenLimitMessage, type CalibrationOptions, type LoadedWindows } from './calibration';
import { parseMetric, parseStrategy, resolveRequest, type RemovalRequest } from './choose';
import { estimateTokens, JobTracker, jobPriors, prunePhases, revisePlan, tokenizeReporter, trackJob, type PruneJobShape } from './jobProgress';
import { acquireOutputLock, type OutputLock } from './outputLock';
import { checkOutputSpace } from './outputSpace';
import { rewriteHoldingLock, type RewriteResult } from './rewrite';
import { chooseBlock } from './strategies/block';
import { iterative } from './strategies/iterative';
import { oneShot } from './strategies/oneShot';
import { batchTokens, perplexityBatches, scoreBatches, type Batch, type BatchedPerplexity, type WorkProgress } from './strategies/passes';
import type { StrategyResult } from './strategies/types';

/** Progress of a prune run, one call per step of work: see WorkProgress for the phases and units. */
export type PruneProgress = WorkProgress;

/**
 * Options of {@link prune}: the data (`calib`, `eval`), how many layers (`remove` or `ratio`), how
 * to choose them (`metric`, `strategy`), where to write (`out`), and the engine fields (threads,
 * device, cuda) every scoring and perplexity pass computes with.
 */
export interface PruneOptions extends RemovalRequest, CalibrationOptions, EngineOptions {
  /** Calibration data: files, folders or '-' (stdin). */
  calib: string | readonly string[];
  /** Score to rank layers by (default 'bi'). */
  metric?: Metric;
  /** 'one-shot' (default, the paper), 'iterative' or 'block'. */
  strategy?: Strategy;
  /** Held-out data for perplexity before and after (same windowing options as calib, without --samples). */
  eval?: string | readonly string[];
  /** Windowing for the eval data where it should differ from calib's (e.g. its own samples/seed). */
  evalOptions?: CalibrationOptions;
  /** Output directory; required unless dryRun. */
  out?: string;
  /** Replace a non-empty `out` once the new checkpoint is complete. */
  force?: boolean;
  /** Stop after choosing: no rewrite, no perplexity. */
  dryRun?: boolean;
  /** Iterative strategy: memory for residual-stream snapshots (default 1 GiB; 0: none). */
  snapshotBudgetBytes?: number;
  /**
   * Progress of each step (bytes of text tokenized, tokens through layers, bytes written), with
   * `job`: the whole prune's fraction done and ETA (never decreasing, across all steps).
   */
  onProgress?: (p: PruneProgress) => void;
  /** One-line notes for people: the calibration summary, the choice. */
  onNote?: (message: string) => void;
  /** Aborting stops at the next batch or chunk; the promise rejects with code ERR_ABORTED and nothing is written. */
  signal?: AbortSignal;
}

/** The cut: which layers go, which stay, and what that saves. */
export interface PrunePlan {
  /** Source layer indices deleted, ascending (0-based). */
  removed: number[];
  /** Source layer indices kept, ascending; the new model's layer i is kept[i]. */
  kept: number[];
  /** Decoder layers before the cut (config.json num_hidden_layers). */
  numLayers: number;
  /** Decoder layers after the cut. */
  numLayersAfter: number;
  /** Parameter counts (elements of every tensor) before, after and removed. */
  parameters: { before: number; after: number; saved: number };
  /** Tensor bytes (excluding safetensors headers) before, after and removed. */
  bytes: { before: number; after: number; saved: number };
  /** mergekit passthrough `slices`, each `layer_range: [start, end)`. */
  mergekit: Array<{ layer_range: [number, number] }>;
  /** mergekit's `dtype:` (as in mergekit.yaml); absent when the source's dtypes are mixed. */
  mergekitDtype?: string;
  /** llama.cpp `llama-quantize --prune-layers` indices. */
  llamaCppPruneLayers: number[];
}

/** What `prune` did: the report it wrote, the plan, every score, and the perplexity before and after. */
export interface PruneResult {
  /** report.json's content (also written to OUT with report.md and chart.svg). */
  report: PruneReport;
  /** The layers removed and kept, and the sizes before and after. */
  plan: PrunePlan;
  /** Every layer of the source, scored on the full model. */
  scores: LayerScore[];
  /** The strategy's choice: removed layers, a reason for each, and its trace (iterations, block). */
  strategy: StrategyResult;
  /** The calibration data as scored: documents, tokens, windows, and the source files. */
  calibration: LoadedWindows['summary'] & { sources: string[] };
  /**
   * Perplexity on `eval` data of the original and of the pruned model, and the relative rise
   * (after / before - 1, e.g. 0.12 = 12% higher); null without `eval` or for a dry run.
   */
  perplexity: { before: BatchedPerplexity; after: BatchedPerplexity; rise: number } | null;
  /** The rewrite's result; null for a dry run. */
  rewrite: RewriteResult | null;
  /** The absolute output directory; null for a dry run. */
  outDir: string | null;
}

/** Parameters and bytes of every tensor, and of each layer's tensors. */
function sizes(ckpt: Checkpoint, removed: readonly number[]): Pick<PrunePlan, 'parameters' | 'bytes'> {
  let params = 0;
  let bytes = 0;
  for (const t of ckpt.tensors.values()) {
    params += t.shape.reduce((a, b) => a * b, 1);
    bytes += t.byteLength;
  }
  let savedParams = 0;
  let savedBytes = 0;
  for (const l of removed) {
    for (const t of layerTensors(ckpt, l).values()) {
      savedParams += t.shape.reduce((a, b) => a * b, 1);
      savedBytes += t.byteLength;
    }
  }
  return {
    parameters: { before: params, after: params - savedParams, saved: savedParams },
    bytes: { before: bytes, after: bytes - savedBytes, saved: savedBytes },
  };
}

function addonVersions(): Record<string, string> {
  try {
    const info = loadBinding().buildInfo();
    return { addon: info.version, backends: info.backends.join(',') };
  } catch {
    return {};
  }
}

/** Bytes the rewrite copies: every tensor but `count` layers' (layer 0's size each; the plan's estimate). */
function estimateWriteBytes(ckpt: Checkpoint, count: number): number {
  let all = 0;
  for (const t of ckpt.tensors.values()) all += t.byteLength;
  let layer = 0;
  if (ckpt.config.numHiddenLayers > 0) for (const t of layerTensors(ckpt, 0).values()) layer += t.byteLength;
  return Math.max(0, all - count * layer);
}

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * The whole job: reads calibration data, scores every layer, chooses the layers to delete by
 * `metric` and `strategy`, measures perplexity before and after on `eval` data when given, and
 * writes the pruned checkpoint to `out` with report.json, report.md and chart.svg. `out` appears
 * complete or not at all; the source is never modified. Defaults follow the paper: Block
 * Influence, one-shot, 256-token windows.
 *
 * `model` is a checkpoint directory (config.json + *.safetensors), a Hugging Face cache folder or
 * hub id in the local cache, or a checkpoint already opened with {@link openCheckpoint}.
 * Rejects with a {@link ShortGptError} (stable `code`) on bad data, options or output placement,
 * before the first layer is scored.
 *
 * @example
 * const result = await prune('./Llama-2-7b-hf', {
 *   calib: 'pg19.parquet', samples: 1024, remove: 9, eval: 'wikitext.txt', out: './Llama-2-7b-short',
 * });
 * console.log(result.plan.removed, result.perplexity?.rise);
 */
export async function prune(model: Checkpoint | string, options: PruneOptions): Promise<PruneResult> {
  const tStart = process.hrtime.bigint();
  const timings: Record<string, number> = {};
  const note = options.onNote ?? (() => undefined);
  const metric = parseMetric(options.metric ?? 'bi');
  const strategyName = parseStrategy(options.strategy ?? 'one-shot');
  const dryRun = options.dryRun === true;
  if (!dryRun && (options.out === undefined || options.out === '')) {
    throw new ShortGptError('ERR_OUTPUT_MISSING', 'prune: say where to write the pruned model (out / --out DIR), or ask for a dry run');
  }

  const engine = engineOptionsOf(options);
  checkEngineOptions(engine);
  // Unusable CUDA is an error before any data is read, not at the first session; cached per process.
  if (engine.device === 'cuda') resolveDevice('cuda');

  const t = process.hrtime.bigint();
  const ckpt = typeof model === 'string' ? await openCheckpoint(model) : model;
  const req = resolveRequest(ckpt.config.numHiddenLayers, options);
  const outDir = dryRun ? null : path.resolve(options.out as string);
  // OUT is locked, checked and sized before any work: a locked, occupied, read-only or full
  // output is an error now, not after the scoring and the perplexity passes.
  let lock: OutputLock | undefined;
  if (outDir !== null) {
    checkOutputPlacement(ckpt.dir, outDir);
    lock = await acquireOutputLock(outDir);
  }
  let failed = true;
  try {
    if (lock !== undefined && outDir !== null) {
      for (const n of lock.notes) note(n);
      await checkOutputVacancy(outDir, options.force === true);
      await checkOutputSpace(outDir, smallestOutputBytes(ckpt, req.count), `the pruned checkpoint needs at least (whichever ${plural(req.count, 'layer')} go)`);
    }
    const result = await pruneLocked(ckpt, options, { tStart, tLoad: t, timings, note, metric, strategyName, dryRun, req, outDir, engine });
    failed = false;
    return result;
  } finally {
    lock?.release(failed);
  }
}

/** Tensor bytes of the output if the `count` largest layers go: no choice of layers writes less. */
function smallestOutputBytes(ckpt: Checkpoint, count: number): number {
  let all = 0;
  for (const t of ckpt.tensors.values()) all += t.byteLength;
  const perLayer: number[] = [];
  for (let l = 0; l < ckpt.config.numHiddenLayers; l++) {
    let b = 0;
    for (const t of layerTensors(ckpt, l).values()) b += t.byteLength;
    perLayer.push(b);
  }
  perLayer.sort((a, b) => b - a);
  return all - perLayer.slice(0, count).reduce((s, b) => s + b, 0);
}

interface JobStart {
  tStart: bigint;
  /** When opening the checkpoint began (the load timing includes it). */
  tLoad: bigint;
  engine: EngineOptions;
  timings: Record<string, number>;
  note: (message: string) => void;
  metric: Metric;
  strategyName: Strategy;
  dryRun: boolean;
  req: ReturnType<typeof resolveRequest>;
  outDir: string | null;
}

/** prune() after the output is locked and checked: load, score, choose, evaluate, rewrite. */
async function pruneLocked(ckpt: Checkpoint, options: PruneOptions, start: JobStart): Promise<PruneResult> {
  const { tStart, timings, note, metric, strategyName, dryRun, req, outDir, engine } = start;
  let t = start.tLoad;
  // One plan for the whole job, so progress runs from 0 to 100% once (lib/prune/jobProgress.ts).
  const L = ckpt.config.numHiddenLayers;
  const job: PruneJobShape = {
    numLayers: L,
    iterative: strategyName === 'iterative',
    count: req.count,
    evaluate: options.eval !== undefined && !dryRun,
    writeBytes: dryRun ? 0 : estimateWriteBytes(ckpt, req.count),
  };
  const tracker = new JobTracker(prunePhases(job, 0, 0), jobPriors(ckpt, engine, options.seqLen));
  const onProgress = trackJob(tracker, options.onProgress);
  const tokenTotal = (batches: readonly Batch[]): number => batches.reduce((n, b) => n + batchTokens(b), 0);
  // Token counts for the plan: guesses from the text's size until it is tokenized and windowed.
  let calibTokens = 0;
  const reporters = onProgress && { tokenize: tokenizeReporter('tokenize', L, onProgress), 'tokenize-eval': tokenizeReporter('tokenize-eval', L, onProgress) };
  const onTokenize = (phase: 'tokenize' | 'tokenize-eval') => reporters && ((t: TokenizeProgress): Promise<void> | undefined => {
    if (t.documentsDone === 0 && phase === 'tokenize') {
      calibTokens = estimateTokens(t.bytesTotal, options.samples !== undefined ? options.samples * (options.seqLen ?? 256) : undefined);
      revisePlan(tracker, prunePhases(job, calibTokens, calibTokens)); // the eval data: the same guess, for now
    } else if (t.documentsDone === 0) {
      revisePlan(tracker, prunePhases(job, calibTokens, estimateTokens(t.bytesTotal)));
    }
    return reporters[phase](t);
  });
  const calib = await loadWindows(ckpt, options.calib, options, 'calibration data', onTokenize('tokenize'));
  calibTokens = tokenTotal(calib.batches);
  revisePlan(tracker, prunePhases(job, calibTokens, calibTokens));
  note(`calibration: ${describeCalibration(calib.summary)} (${plural(calib.batches.length, 'batch')})`);
  const calibWarnings = calibrationWarnings(calib.summary);
  for (const w of calibWarnings) note(`warning: ${w}`);
  if (options.eval !== undefined && dryRun) note('dry run: --eval skipped (perplexity needs the pruned model)');
  const held = options.eval !== undefined && !dryRun
    ? await loadWindows(ckpt, options.eval, { ...options, samples: undefined, seed: undefined, ...options.evalOptions }, '--eval data', onTokenize('tokenize-eval'))
    : undefined;
  if (held) revisePlan(tracker, prunePhases(job, calibTokens, tokenTotal(held.batches)));
  // Held-out data cut short is evaluated on its start only: said, as eval --data says it.
  const evalWarnings = held?.summary.tokenLimit !== undefined ? [tokenLimitMessage(held.summary.tokenLimit, '--eval data')] : [];
  for (const w of evalWarnings) note(`warning: ${w}`);
  timings.load = seconds(t);

  t = process.hrtime.bigint();
  const pass = { engine, signal: options.signal, onProgress };
  let scores: LayerScore[];
  let chosen: StrategyResult;
  if (strategyName === 'iterative') {
    const r = await iterative(ckpt, calib.batches, metric, req, { ...pass, snapshotBudgetBytes: options.snapshotBudgetBytes });
    scores = r.initial;
    chosen = r;
    timings.score = seconds(t);
  } else {
    const full = await scoreBatches(ckpt, calib.batches, { ...pass, keepLastTokenStates: strategyName === 'block' });
    scores = full.layers;
    timings.score = seconds(t);
    t = process.hrtime.bigint();
    chosen = strategyName === 'block'
      ? chooseBlock(full.lastTokenStates as NonNullable<typeof full.lastTokenStates>, req)
      : oneShot(scores.map(toMetricScores), metric, options);
    timings.choose = seconds(t);
  }
  const removed = chosen.removed;
  const size = sizes(ckpt, removed);

  let ppl: PruneResult['perplexity'] = null;
  if (held) {
    t = process.hrtime.bigint();
    const before = await perplexityBatches(ckpt, held.batches, 'eval-before', pass);
    // Skipping a layer at run time equals removing it from the checkpoint (tested), so the
    // pruned model's perplexity is known before it is written and can go into its report.
    const after = await perplexityBatches(ckpt, held.batches, 'eval-after', { ...pass, skipLayers: removed });
    ppl = { before, after, rise: after.perplexity / before.perplexity - 1 };
    timings.eval = seconds(t);
  }
  timings.total = seconds(tStart);

  const report = buildReport({
    model: {
      source: ckpt.dir,
      output: outDir,
      architecture: ckpt.config.architecture,
      numLayers: ckpt.config.numHiddenLayers,
      parameters: { before: size.parameters.before, after: size.parameters.after },
      bytes: { before: size.bytes.before, after: size.bytes.after },
      mergekitDtype: checkpointMergekitDtype(ckpt),
    },
    metric,
    strategy: strategyName,
    request: { remove: options.remove, ratio: options.ratio, keepFirst: req.keepFirst, keepLast: req.keepLast },
    scores: scores.map(toMetricScores),
    removed,
    reasons: chosen.reasons,
    iterations: chosen.iterations,
    block: chosen.block,
    calibration: { sources: calib.sources, summary: calib.summary, warnings: calibWarnings },
    perplexity: ppl && held ? { data: held.sources, predictions: ppl.before.predictions, before: ppl.before.perplexity, after: ppl.after.perplexity, warnings: evalWarnings } : undefined,
    timings,
    versions: addonVersions(),
    dryRun,
  });
  const plan: PrunePlan = {
    removed,
    kept: report.keptLayers,
    numLayers: report.model.numLayers,
    numLayersAfter: report.model.numLayersAfter,
    ...size,
    mergekit: report.cut.mergekit,
    mergekitDtype: report.cut.mergekitDtype,
    llamaCppPruneLayers: report.cut.llamaCppPruneLayers,
  };

  let rewrite: RewriteResult | null = null;
  if (outDir !== null) {
    rewrite = await rewriteHoldingLock(ckpt, outDir, {
      removeLayers: removed,
      force: options.force,
      signal: options.signal,
      extraFiles: reportFiles(report),
      report,
      extraMetadata: { 'shortgpt.metric': metric, 'shortgpt.strategy': strategyName },
      onNote: note,
      onProgress: onProgress
        ? (p) => onProgress({ phase: 'rewrite', layer: -1, layers: req.numLayers, windowsDone: 0, windowsTotal: 0, workDone: p.bytesDone, workTotal: p.bytesTotal })
        : undefined,
    });
  }
  tracker.finish();
  return {
    report,
    plan,
    scores,
    strategy: chosen,
    calibration: { ...calib.summary, sources: calib.sources },
    perplexity: ppl,
    rewrite,
    outDir,
  };
}
