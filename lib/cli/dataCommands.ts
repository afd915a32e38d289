/**
 * The --calib / --data halves of `score` and `eval`: read data through the same path as
 * `prune` (lib/prune/calibration.ts), run it batch by batch with progress on stderr, and hand
 * back results in the shapes the commands already print.
 */
import type { Checkpoint } from '../checkpoint/types';
import { describeCalibration } from '../data/windows';
import type { EngineOptions } from '../engine/engineOptions';
import { calibrationWarnings, loadWindows, tokenLimitMessage, type CalibrationOptions } from '../prune/calibration';
import type { TokenizeProgress } from '../data/sources';
import { estimateTokens, JobTracker, jobPriors, tokenizeReporter, trackJob } from '../prune/jobProgress';
import { batchTokens, perplexityBatches, scoreBatches, type Batch, type BatchedPerplexity, type WorkProgress } from '../prune/strategies/passes';
import type { LayerScores } from '../scoring/scoreLayers';
import { flag, type Parsed } from './args';
import { listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { progressLine, type ProgressLine } from './progress';

export interface DataRun<T> {
  result: T;
  /** "24 documents, 6,110 tokens -> 24 windows of <= 256 tokens". */
  description: string;
  sources: string[];
  /** Reasons to distrust the result (too little calibration data); also printed on stderr. */
  warnings: string[];
}

/** The data options, with notes from reading (skipped folder entries) on stderr unless --quiet. */
function dataOptions(command: string, parsed: Parsed, io: CliIO): CalibrationOptions {
  const quiet = flag(parsed, 'quiet');
  return { ...parseCalibOptions(command, parsed), onNote: (m) => { if (!quiet) io.stderr.write(`${m}\n`); } };
}

/**
 * A --calib/--data job (tokenize, then one pass of `layersRun` layers) as one progress line from
 * 0 to 100% with one ETA (lib/prune/jobProgress.ts).
 */
function dataJob(ckpt: Checkpoint, engine: EngineOptions, progress: ProgressLine, pass: 'score' | 'eval', layersRun: number) {
  const tracker = new JobTracker([{ id: 'tokenize', kind: 'tokenize', units: 0 }, { id: pass, kind: 'compute', units: 0 }], jobPriors(ckpt, engine));
  const onProgress = trackJob(tracker, progress.update) as (p: WorkProgress) => void;
  const report = tokenizeReporter('tokenize', ckpt.config.numHiddenLayers, onProgress);
  return {
    onProgress,
    onTokenize(t: TokenizeProgress): Promise<void> | undefined {
      if (t.documentsDone === 0) tracker.revise(pass, estimateTokens(t.bytesTotal) * layersRun);
      return report(t);
    },
    loaded(batches: readonly Batch[]): void {
      tracker.revise(pass, batches.reduce((n, b) => n + batchTokens(b), 0) * layersRun);
    },
  };
}

/** Scores every layer over `batches`, with the progress line on stderr (unless --quiet). */
async function scoreWithProgress(ckpt: Checkpoint, batches: readonly Batch[], progress: ProgressLine, engine: EngineOptions, onProgress: (p: WorkProgress) => void, note?: string): Promise<LayerScores> {
  if (note) progress.note(note);
  try {
    return await scoreBatches(ckpt, batches, { engine, onProgress });
  } finally {
    progress.clear();
  }
}

/** `score MODEL --tokens FILE`: every layer's scores on the file's sequences, as one batch. */
export function scoreTokenSequences(ckpt: Checkpoint, sequences: readonly number[][], parsed: Parsed, io: CliIO, engine: EngineOptions): Promise<LayerScores> {
  const progress = progressLine(io, flag(parsed, 'quiet'));
  return scoreWithProgress(ckpt, [sequences.map((s) => Int32Array.from(s))], progress, engine, progress.update);
}

/** `score MODEL --calib DATA`: every layer's scores on the calibration windows. */
export async function scoreCalibration(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions): Promise<DataRun<LayerScores>> {
  const progress = progressLine(io, flag(parsed, 'quiet'));
  const job = dataJob(ckpt, engine, progress, 'score', ckpt.config.numHiddenLayers);
  let data;
  try {
    data = await loadWindows(ckpt, listOption(parsed, 'calib') as string[], dataOptions(command, parsed, io), 'calibration data', job.onTokenize);
  } finally {
    progress.clear();
  }
  job.loaded(data.batches);
  const description = describeCalibration(data.summary);
  const warnings = calibrationWarnings(data.summary);
  const note = [`calibration: ${description}`, ...warnings.map((w) => `warning: ${w}`)].join('\n');
  const result = await scoreWithProgress(ckpt, data.batches, progress, engine, job.onProgress, note);
  return { result, description, sources: data.sources, warnings };
}

/** `eval MODEL --data DATA`: perplexity on the windows, with `skipLayers` skipped. */
export async function evalData(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions, skipLayers: number[]): Promise<DataRun<BatchedPerplexity>> {
  const progress = progressLine(io, flag(parsed, 'quiet'));
  const job = dataJob(ckpt, engine, progress, 'eval', ckpt.config.numHiddenLayers - new Set(skipLayers).size);
  try {
    const data = await loadWindows(ckpt, listOption(parsed, 'data') as string[], dataOptions(command, parsed, io), 'data', job.onTokenize);
    job.loaded(data.batches);
    const description = describeCalibration(data.summary);
    const warnings = data.summary.tokenLimit !== undefined ? [tokenLimitMessage(data.summary.tokenLimit, 'data')] : [];
    progress.note([`data: ${description}`, ...warnings.map((w) => `warning: ${w}`)].join('\n'));
    return { result: await perplexityBatches(ckpt, data.batches, 'eval', { engine, skipLayers, onProgress: job.onProgress }), description, sources: data.sources, warnings };
  } finally {
    progress.clear();
  }
}
