/**
 * `eval PRUNED --compare ORIGINAL (--tokens FILE | --data DATA)`: the paired comparison
 * (lib/eval/compare.ts) on the same windows, tokenized with the candidate's tokenizer, with the
 * progress line on stderr, printed as text or as --json:
 * {"perplexity":{"reference","candidate"},"kl":{"mean","p95"},"top1Agreement","predictions",...,"perWindow":[...]}.
 */
import type { Checkpoint } from '../checkpoint/types';
import { describeCalibration } from '../data/windows';
import { readTokenFile } from '../data/tokenFile';
import type { EngineOptions } from '../engine/engineOptions';
import { checkComparable, type ComparisonResult } from '../eval/compare';
import { compareBatches } from '../eval/compareBatches';
import { loadWindows, tokenLimitMessage } from '../prune/calibration';
import { estimateTokens, JobTracker, jobPriors, tokenizeReporter, trackJob } from '../prune/jobProgress';
import { batchTokens, type WorkProgress } from '../prune/strategies/passes';
import { UsageError } from '../errors';
import { plural } from '../util/format';
import { flag, stringOption, type Parsed } from './args';
import { listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { progressLine } from './progress';

export interface EvalCompareRequest {
  candidate: Checkpoint;
  reference: Checkpoint;
  skipLayers: number[];
  referenceSkipLayers: number[];
  tokensFile?: string;
  engine: EngineOptions;
}

/** Runs the comparison (and says on which device); the caller prints it. */
export async function runEvalCompare(req: EvalCompareRequest, parsed: Parsed, io: CliIO): Promise<ComparisonResult & { device: 'cpu' | 'cuda' | undefined }> {
  const { candidate, reference } = req;
  checkComparable(candidate, reference);
  const engine = cpuForComparison('eval', '--compare', req.engine, parsed, io);
  for (const [ckpt, skip, opt] of [[candidate, req.skipLayers, '--skip-layers'], [reference, req.referenceSkipLayers, '--compare-skip-layers']] as const) {
    const bad = skip.find((l) => l >= ckpt.config.numHiddenLayers);
    if (bad !== undefined) throw new UsageError(`eval: ${opt}: layer ${bad} does not exist; ${ckpt.dir} has layers 0..${ckpt.config.numHiddenLayers - 1}`);
  }
  const quiet = flag(parsed, 'quiet');
  const progress = progressLine(io, quiet);
  const layersRun = candidate.config.numHiddenLayers - new Set(req.skipLayers).size + reference.config.numHiddenLayers - new Set(req.referenceSkipLayers).size;
  const tracker = new JobTracker([{ id: 'tokenize', kind: 'tokenize', units: 0 }, { id: 'eval', kind: 'compute', units: 0 }], jobPriors(candidate, engine));
  const onProgress = trackJob(tracker, progress.update) as (p: WorkProgress) => void;
  const opts = { engine, onProgress, skipLayers: req.skipLayers, referenceSkipLayers: req.referenceSkipLayers };
  try {
    if (req.tokensFile !== undefined) {
      const seqs = await readTokenFile(req.tokensFile, candidate.config.vocabSize);
      return { ...(await compareBatches(candidate, reference, [seqs.map((s) => Int32Array.from(s))], opts)), device: engine.device };
    }
    const report = tokenizeReporter('tokenize', candidate.config.numHiddenLayers, onProgress);
    const data = await loadWindows(candidate, listOption(parsed, 'data') as string[], { ...parseCalibOptions('eval', parsed), onNote: (m) => { if (!quiet) io.stderr.write(`${m}\n`); } }, 'data', (t) => {
      if (t.documentsDone === 0) tracker.revise('eval', estimateTokens(t.bytesTotal) * layersRun);
      return report(t);
    });
    tracker.revise('eval', data.batches.reduce((n, b) => n + batchTokens(b), 0) * layersRun);
    const warnings = data.summary.tokenLimit !== undefined ? [tokenLimitMessage(data.summary.tokenLimit, 'data')] : [];
    progress.note([`data: ${describeCalibration(data.summary)}`, ...warnings.map((w) => `warning: ${w}`)].join('\n'));
    return { ...(await compareBatches(candidate, reference, data.batches, opts)), device: engine.device };
  } finally {
    progress.clear();
  }
}

/**
 * The divergence pass (and the token log-probability pass of --tasks: `why`) is CPU-only for
 * now: `--device auto` that found CUDA runs on the CPU instead (said on stderr); an explicit
 * `--device cuda` is a usage error naming `what`.
 */
export function cpuForComparison<E extends { device?: 'cpu' | 'cuda' }>(command: string, what: string, engine: E, parsed: Parsed, io: CliIO, why = 'the CUDA backend has no divergence pass yet'): E {
  if (engine.device !== 'cuda') return engine;
  const asked = stringOption(parsed, 'device');
  if (asked !== undefined && asked !== 'auto') throw new UsageError(`${command}: ${what} needs --device cpu (${why})`);
  if (!flag(parsed, 'quiet') && !flag(parsed, 'json')) io.stderr.write(`device: cpu for ${what} (${why})\n`);
  return { ...engine, device: 'cpu' };
}

/** The --json document (per the issue: perplexity, kl, top1Agreement, predictions; then the rest). */
export function comparisonJson(r: ComparisonResult, device: string | undefined): Record<string, unknown> {
  return {
    perplexity: r.perplexity,
    kl: r.kl,
    top1Agreement: r.top1Agreement,
    predictions: r.predictions,
    tokens: r.tokens,
    meanNll: r.meanNll,
    candidate: { model: r.candidate, skipLayers: r.skipLayers },
    reference: { model: r.reference, skipLayers: r.referenceSkipLayers },
    device,
    perWindow: r.perWindow.map((w) => ({ window: w.window, tokens: w.tokens, predictions: w.predictions, perplexity: w.perplexity, kl: w.kl, top1Agreement: w.top1Agreement })),
  };
}

export function comparisonText(r: ComparisonResult): string {
  const skip = (s: number[]) => (s.length ? ` (layers ${s.join(',')} skipped)` : '');
  return [
    `reference ${r.reference}${skip(r.referenceSkipLayers)}: perplexity ${r.perplexity.reference.toFixed(6)}`,
    `candidate ${r.candidate}${skip(r.skipLayers)}: perplexity ${r.perplexity.candidate.toFixed(6)} (${signedPercent(r.perplexity.candidate / r.perplexity.reference - 1)})`,
    `KL(reference || candidate): mean ${r.kl.mean.toPrecision(4)} nats, p95 ${r.kl.p95.toPrecision(4)} nats`,
    `top-1 agreement ${(100 * r.top1Agreement).toFixed(2)}%  (over ${plural(r.predictions, 'prediction')}, ${plural(r.perWindow.length, 'window')})`,
  ].join('\n') + '\n';
}

function signedPercent(x: number): string {
  return `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}%`;
}
