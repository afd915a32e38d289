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
import { reportFiles } from '../report/files';
import type { Metric, PruneReport, Strategy } from '../report/types';
import type { LayerScore } from '../scoring/scoreLayers';
import { checkOutputPlacement, checkOutputVacancy } from './atomicOutput';
import { loadWindows, type CalibrationOptions, type LoadedWindows } from './calibration';
import { parseMetric, parseStrategy, resolveRequest, type RemovalRequest } from './choose';
import { rewriteOpenedCheckpoint, type RewriteResult } from './rewrite';
import { chooseBlock } from './strategies/block';
import { iterative } from './strategies/iterative';
import { oneShot } from './strategies/oneShot';
import { perplexityBatches, scoreBatches, type BatchedPerplexity, type WorkProgress } from './strategies/passes';
import type { StrategyResult } from './strategies/types';

export type PruneProgress = WorkProgress;

/** Engine fields (threads, device, cuda): where every scoring and perplexity pass computes. */
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
  /** Work done per step (tokens through layers; bytes for the rewrite). */
  onProgress?: (p: PruneProgress) => void;
  /** One-line notes for people: the calibration summary, the choice. */
  onNote?: (message: string) => void;
  signal?: AbortSignal;
}

export interface PrunePlan {
  removed: number[];
  kept: number[];
  numLayers: number;
  numLayersAfter: number;
  parameters: { before: number; after: number; saved: number };
  bytes: { before: number; after: number; saved: number };
  /** mergekit passthrough `slices`, each `layer_range: [start, end)`. */
  mergekit: Array<{ layer_range: [number, number] }>;
  /** llama.cpp `llama-quantize --prune-layers` indices. */
  llamaCppPruneLayers: number[];
}

export interface PruneResult {
  report: PruneReport;
  plan: PrunePlan;
  /** Every layer of the source, scored on the full model. */
  scores: LayerScore[];
  strategy: StrategyResult;
  calibration: LoadedWindows['summary'] & { sources: string[] };
  perplexity: { before: BatchedPerplexity; after: BatchedPerplexity; rise: number } | null;
  /** The rewrite's result; null for a dry run. */
  rewrite: RewriteResult | null;
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

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

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

  let t = process.hrtime.bigint();
  const ckpt = typeof model === 'string' ? await openCheckpoint(model) : model;
  const req = resolveRequest(ckpt.config.numHiddenLayers, options);
  const outDir = dryRun ? null : path.resolve(options.out as string);
  if (outDir !== null) {
    checkOutputPlacement(ckpt.dir, outDir);
    await checkOutputVacancy(outDir, options.force === true);
  }
  const calib = await loadWindows(ckpt, options.calib, options, 'calibration data');
  note(`calibration: ${calib.summary.documents} documents, ${calib.summary.tokens} tokens -> ${calib.summary.windows} windows of <= ${calib.summary.seqLen} tokens (${calib.batches.length} batch${calib.batches.length === 1 ? '' : 'es'})`);
  if (options.eval !== undefined && dryRun) note('dry run: --eval skipped (perplexity needs the pruned model)');
  const held = options.eval !== undefined && !dryRun
    ? await loadWindows(ckpt, options.eval, { ...options, samples: undefined, seed: undefined, ...options.evalOptions }, '--eval data')
    : undefined;
  timings.load = seconds(t);

  t = process.hrtime.bigint();
  const pass = { engine, signal: options.signal, onProgress: options.onProgress };
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
    },
    metric,
    strategy: strategyName,
    request: { remove: options.remove, ratio: options.ratio, keepFirst: req.keepFirst, keepLast: req.keepLast },
    scores: scores.map(toMetricScores),
    removed,
    reasons: chosen.reasons,
    iterations: chosen.iterations,
    block: chosen.block,
    calibration: { sources: calib.sources, summary: calib.summary },
    perplexity: ppl && held ? { data: held.sources, predictions: ppl.before.predictions, before: ppl.before.perplexity, after: ppl.after.perplexity } : undefined,
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
    llamaCppPruneLayers: report.cut.llamaCppPruneLayers,
  };

  let rewrite: RewriteResult | null = null;
  if (outDir !== null) {
    rewrite = await rewriteOpenedCheckpoint(ckpt, outDir, {
      removeLayers: removed,
      force: options.force,
      signal: options.signal,
      extraFiles: reportFiles(report),
      extraMetadata: { 'shortgpt.metric': metric, 'shortgpt.strategy': strategyName },
      onProgress: options.onProgress
        ? (p) => options.onProgress?.({ phase: 'rewrite', layer: -1, layers: req.numLayers, windowsDone: 0, windowsTotal: 0, workDone: p.bytesDone, workTotal: p.bytesTotal })
        : undefined,
    });
  }
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
