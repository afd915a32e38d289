/**
 * The --calib / --data halves of `score` and `eval`: read data through the same path as
 * `prune` (lib/prune/calibration.ts), run it batch by batch with progress on stderr, and hand
 * back results in the shapes the commands already print.
 */
import type { Checkpoint } from '../checkpoint/types';
import { describeCalibration } from '../data/windows';
import type { EngineOptions } from '../engine/engineOptions';
import { loadWindows } from '../prune/calibration';
import { perplexityBatches, scoreBatches, type Batch, type BatchedPerplexity } from '../prune/strategies/passes';
import type { LayerScores } from '../scoring/scoreLayers';
import { flag, type Parsed } from './args';
import { listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { progressLine } from './progress';

export interface DataRun<T> {
  result: T;
  /** "24 documents, 6,110 tokens -> 24 windows of <= 256 tokens". */
  description: string;
  sources: string[];
}

/** Scores every layer over `batches`, with the progress line on stderr (unless --quiet). */
async function scoreWithProgress(ckpt: Checkpoint, batches: readonly Batch[], parsed: Parsed, io: CliIO, engine: EngineOptions, note?: string): Promise<LayerScores> {
  const progress = progressLine(io, flag(parsed, 'quiet'));
  if (note) progress.note(note);
  try {
    return await scoreBatches(ckpt, batches, { engine, onProgress: progress.update });
  } finally {
    progress.clear();
  }
}

/** `score MODEL --tokens FILE`: every layer's scores on the file's sequences, as one batch. */
export function scoreTokenSequences(ckpt: Checkpoint, sequences: readonly number[][], parsed: Parsed, io: CliIO, engine: EngineOptions): Promise<LayerScores> {
  return scoreWithProgress(ckpt, [sequences.map((s) => Int32Array.from(s))], parsed, io, engine);
}

/** `score MODEL --calib DATA`: every layer's scores on the calibration windows. */
export async function scoreCalibration(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions): Promise<DataRun<LayerScores>> {
  const data = await loadWindows(ckpt, listOption(parsed, 'calib') as string[], parseCalibOptions(command, parsed), 'calibration data');
  const description = describeCalibration(data.summary);
  const result = await scoreWithProgress(ckpt, data.batches, parsed, io, engine, `calibration: ${description}`);
  return { result, description, sources: data.sources };
}

/** `eval MODEL --data DATA`: perplexity on the windows, with `skipLayers` skipped. */
export async function evalData(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions, skipLayers: number[]): Promise<DataRun<BatchedPerplexity>> {
  const progress = progressLine(io, flag(parsed, 'quiet'));
  const data = await loadWindows(ckpt, listOption(parsed, 'data') as string[], parseCalibOptions(command, parsed), 'data');
  const description = describeCalibration(data.summary);
  progress.note(`data: ${description}`);
  try {
    return { result: await perplexityBatches(ckpt, data.batches, 'eval', { engine, skipLayers, onProgress: progress.update }), description, sources: data.sources };
  } finally {
    progress.clear();
  }
}
