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
import { checkHealArchitecture, checkHealDevice, healCut, healPassLayers, parseHealMethod, parseHealRidge, withPatchedTensors, type HealMethod, type HealReport } from './heal';
import { checkBootstrapOptions, pruneBootstrap } from './pruneBootstrap';
import { loadTaskFile } from '../eval/tasks';
import { hasBound, type QualityBounds, type QualityCurve } from './qualityBound';
import { boundedRequest, checkBoundOptions, chooseByQuality } from './qualityBoundChoice';
import { comparisonPerplexity, compareBatches } from '../eval/compareBatches';
import type { NativeLastTokenStates } from '../../binding';
import type { MergedScores } from '../scoring/merge';
import { checkScoresForModel, chooseFromScores, scoresCalibration } from '../scoring/mergePrune';

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
  /**
   * Resample the calibration windows this many times (seeded by `bootstrapSeed`, default 0):
   * per-layer 95% intervals and, for one-shot, each chosen layer's probability (report.bootstrap).
   * CPU backend only (the CUDA backend keeps no per-window sums).
   */
  bootstrap?: number;
  /** Seed of the bootstrap's resampling (default 0): the same seed and windows give the same intervals. */
  bootstrapSeed?: number;
  /**
   * Choose how many layers to cut by quality on the `eval` data (--max-ppl-increase, --max-kl,
   * --min-task-acc): the largest one-shot cut within every bound (remove/ratio, when given, is
   * the largest considered). report.qualityCurve holds the curve of every candidate count.
   */
  qualityBound?: QualityBounds;
  /**
   * Merged scores (`merge --out`, lib/scoring/merge.ts): choose from them instead of scoring
   * (one-shot, block); `calib` is then not read. Refused for another model or for iterative.
   */
  scores?: MergedScores;
  /**
   * 'lstsq': after choosing, fit a least-squares linear patch for each removed block on the
   * calibration data and fold it into the down_proj of the layer before it (lib/prune/heal.ts);
   * 'none' (default): plain deletion. CPU backend only.
   */
  heal?: HealMethod;
  /** --heal's ridge alpha added to MᵀM's diagonal (default 0). */
  healRidge?: number;
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
  // --heal needs the CPU backend: said before CUDA is even probed.
  if (parseHealMethod(options.heal) !== 'none') {
    checkHealDevice(engine);
    if (options.scores !== undefined) throw new ShortGptError('ERR_HEAL_OPTIONS', '--heal lstsq fits on the calibration windows run through the model: give calib data, not merged scores');
  }
  parseHealRidge(options.healRidge);
  if (engine.device === 'cuda') resolveDevice('cuda');
  checkBootstrapOptions(options.bootstrap, options.bootstrapSeed, engine.device);
  const bounded = options.qualityBound !== undefined && hasBound(options.qualityBound);
  if (bounded) checkBoundOptions(options.qualityBound as QualityBounds, strategyName, options.eval !== undefined, engine.device, options.scores !== undefined);

  const t = process.hrtime.bigint();
  const ckpt = typeof model === 'string' ? await openCheckpoint(model) : model;
  if (parseHealMethod(options.heal) !== 'none') checkHealArchitecture(ckpt);
  // A bound chooses the count: --remove/--ratio, if given, only caps the candidates. The report's
  // request keeps what the user asked (null when the bound alone decides); the count chosen is
  // the quality curve's.
  const requested = { remove: options.remove, ratio: options.ratio };
  if (bounded) options = { ...options, ...boundedRequest(ckpt.config.numHiddenLayers, options) };
  const req = resolveRequest(ckpt.config.numHiddenLayers, options);
  if (options.scores) checkScoresForModel(options.scores, ckpt, strategyName);
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
    const result = await pruneLocked(ckpt, options, { tStart, tLoad: t, timings, note, metric, strategyName, dryRun, req, requested, outDir, engine });
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
  /** remove / ratio as the caller gave them (a quality bound replaces them in `options` by the largest count considered). */
  requested: { remove?: number; ratio?: number };
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
    // A bound measures a curve over every count up to req.count (the largest considered).
    curve: options.qualityBound !== undefined && hasBound(options.qualityBound) && options.eval !== undefined ? req.count : 0,
    // The heal pass runs up to the last removed layer: all of them until the cut is known.
    healLayers: parseHealMethod(options.heal) === 'lstsq' && !dryRun ? L : 0,
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
  const calib = options.scores ? scoresCalibration(options.scores) : await loadWindows(ckpt, options.calib, options, 'calibration data', onTokenize('tokenize'));
  calibTokens = tokenTotal(calib.batches);
  revisePlan(tracker, prunePhases(job, calibTokens, calibTokens));
  note(`calibration: ${describeCalibration(calib.summary)} (${plural(calib.batches.length, 'batch')})`);
  const calibWarnings = calibrationWarnings(calib.summary);
  for (const w of calibWarnings) note(`warning: ${w}`);
  const bounded = options.qualityBound !== undefined && hasBound(options.qualityBound);
  if (options.eval !== undefined && dryRun && !bounded) note('dry run: --eval skipped (perplexity needs the pruned model)');
  const held = options.eval !== undefined && (!dryRun || bounded)
    ? await loadWindows(ckpt, options.eval, { ...options, samples: undefined, seed: undefined, ...options.evalOptions }, '--eval data', onTokenize('tokenize-eval'))
    : undefined;
  if (held) revisePlan(tracker, prunePhases(job, calibTokens, tokenTotal(held.batches)));
  // Held-out data cut short is evaluated on its start only: said, as eval --data says it.
  const evalWarnings = held?.summary.tokenLimit !== undefined ? [tokenLimitMessage(held.summary.tokenLimit, '--eval data')] : [];
  for (const w of evalWarnings) note(`warning: ${w}`);
  // --min-task-acc's file is read (and refused) now, as the --eval data is, not after the
  // scoring pass and the curve's KL sweep; the sweep reads it again (small, next to the model).
  const taskBound = bounded ? (options.qualityBound as QualityBounds).minTaskAcc : undefined;
  if (taskBound) await loadTaskFile(taskBound.file, { format: taskBound.format });
  timings.load = seconds(t);

  t = process.hrtime.bigint();
  const pass = { engine, signal: options.signal, onProgress };
  let scores: LayerScore[];
  let chosen: StrategyResult;
  let blockStates: NativeLastTokenStates | undefined;  // block + a quality bound: every count's block
  if (options.scores) {
    ({ scores, chosen } = chooseFromScores(options.scores, strategyName, metric, req, options));
    timings.choose = seconds(t);
  } else if (strategyName === 'iterative') {
    const r = await iterative(ckpt, calib.batches, metric, req, { ...pass, snapshotBudgetBytes: options.snapshotBudgetBytes });
    scores = r.initial;
    chosen = r;
    timings.score = seconds(t);
  } else {
    const full = await scoreBatches(ckpt, calib.batches, { ...pass, keepLastTokenStates: strategyName === 'block' });
    scores = full.layers;
    blockStates = full.lastTokenStates;
    timings.score = seconds(t);
    t = process.hrtime.bigint();
    chosen = strategyName === 'block'
      ? chooseBlock(full.lastTokenStates as NonNullable<typeof full.lastTokenStates>, req)
      : oneShot(scores.map(toMetricScores), metric, options);
    timings.choose = seconds(t);
  }
  let qualityCurve: QualityCurve | undefined;
  if (bounded && held) {
    t = process.hrtime.bigint();
    ({ curve: qualityCurve, chosen } = await chooseByQuality(ckpt, held.batches, scores, metric, req, { ...options, qualityBound: options.qualityBound as QualityBounds }, pass, strategyName === 'block' ? blockStates : undefined));
    note(`quality bound: ${plural(qualityCurve.chosen, 'layer')} is the largest cut within it (${qualityCurve.points.length - 1} candidates measured)`);
    timings.curve = seconds(t);
  }
  const removed = chosen.removed;
  // The cut is known: the rest of the plan with its true count and heal pass.
  job.count = removed.length;
  if (job.writeBytes > 0) job.writeBytes = estimateWriteBytes(ckpt, removed.length);
  if (job.healLayers) job.healLayers = healPassLayers(removed);
  revisePlan(tracker, prunePhases(job, calibTokens, held ? tokenTotal(held.batches) : calibTokens));
  const size = sizes(ckpt, removed);
  // With a bound, the chosen-again probability is that of the count the bound chose (not of the cap).
  const bootstrap = options.bootstrap === undefined ? undefined
    : pruneBootstrap(scores, qualityCurve ? { ...options, remove: removed.length, ratio: undefined } : options, metric, strategyName);

  // --heal: a second, partial pass over the calibration windows for the chosen cut (heal.ts says why).
  const heal = parseHealMethod(options.heal);
  const healRidge = parseHealRidge(options.healRidge);
  let healed: Awaited<ReturnType<typeof healCut>> | undefined;
  let healReport: HealReport | undefined;
  if (heal === 'lstsq' && !dryRun && removed.length > 0) {
    t = process.hrtime.bigint();
    healed = await healCut(ckpt, calib.batches, removed, healRidge, { engine, signal: options.signal, onProgress });
    healReport = healed.report;
    for (const b of healReport.blocks) {
      note(b.patchedLayer === null
        ? `heal: layers ${b.removed[0]}..${b.removed[1] - 1} start at layer 0: no layer before the cut to patch, left plain`
        : `heal: layers ${b.removed[0]}..${b.removed[1] - 1} folded into ${b.tensor} (relative residual ${b.relativeResidual?.toPrecision(4)}, plain ${b.plainResidual?.toPrecision(4)})`);
    }
    timings.heal = seconds(t);
  } else if (heal === 'lstsq' && dryRun) {
    note('dry run: --heal skipped (nothing is written)');
  }

  let ppl: PruneResult['perplexity'] = null;
  let agreement: { kl: { mean: number; p95: number }; top1Agreement: number } | undefined;
  if (held && !dryRun) {
    t = process.hrtime.bigint();
    // Skipping a layer at run time equals removing it from the checkpoint (tested), so the
    // pruned model's perplexity is known before it is written and can go into its report.
    // One paired pass gives both perplexities (bit-identical to two perplexity passes) and the
    // KL / top-1 agreement.
    // The CUDA backend has no divergence pass yet: perplexity only, as two passes.
    let before: BatchedPerplexity;
    let after: BatchedPerplexity;
    if (engine.device === 'cuda') {
      before = await perplexityBatches(ckpt, held.batches, 'eval-before', pass);
      after = await perplexityBatches(ckpt, held.batches, 'eval-after', { ...pass, skipLayers: removed });
    } else {
      const cmp = await compareBatches(ckpt, ckpt, held.batches, { ...pass, skipLayers: removed, phase: 'eval-before', candidatePhase: 'eval-after' });
      agreement = { kl: cmp.kl, top1Agreement: cmp.top1Agreement };
      before = comparisonPerplexity(cmp, 'reference');
      after = comparisonPerplexity(cmp, 'candidate');
    }
    if (healed && healReport && healed.patched.size > 0) {
      // The healed model is the written one: its patched down_proj read from a temporary file.
      const view = await withPatchedTensors(ckpt, healed.patched);
      try {
        const plain = after;
        after = await perplexityBatches(view.ckpt, held.batches, 'eval-healed', { engine, signal: options.signal, skipLayers: removed, onProgress });
        healReport.perplexity = { original: before.perplexity, plain: plain.perplexity, healed: after.perplexity };
      } finally {
        await view.cleanup();
      }
    }
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
    request: { remove: start.requested.remove, ratio: start.requested.ratio, keepFirst: req.keepFirst, keepLast: req.keepLast },
    scores: scores.map(toMetricScores),
    removed,
    reasons: chosen.reasons,
    iterations: chosen.iterations,
    block: chosen.block,
    calibration: { sources: calib.sources, summary: calib.summary, warnings: calibWarnings },
    perplexity: ppl && held
      ? {
        data: held.sources, predictions: ppl.before.predictions, before: ppl.before.perplexity, after: ppl.after.perplexity, warnings: evalWarnings,
        ...agreement, ...(agreement && healed && healed.patched.size > 0 ? { klOf: 'plain cut' as const } : {}),
      }
      : undefined,
    qualityCurve,
    timings,
    versions: addonVersions(),
    dryRun,
    bootstrap,
    heal: healReport,
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
      extraMetadata: {
        'shortgpt.metric': metric, 'shortgpt.strategy': strategyName,
        ...(healReport ? { 'shortgpt.heal': `lstsq alpha=${healReport.alpha} patched=${healReport.blocks.flatMap((b) => (b.patchedLayer === null ? [] : [b.patchedLayer])).join(',')}` } : {}),
      },
      replaceTensors: healed?.replace,
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
