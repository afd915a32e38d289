/**
 * Data sources -> token windows for a given checkpoint, the one path `prune`, `score`, `eval`
 * and the library share: read (text/JSON/JSONL/Parquet/token streams/stdin), tokenize with the
 * model's own tokenizer, cut windows no longer than the model allows, batch by --batch-tokens.
 */
import type { Checkpoint } from '../checkpoint/types';
import type { TokenDType } from '../data/documents';
import { batchWindows } from '../data/batches';
import { loadCalibration, type TokenizeProgress } from '../data/sources';
import { cutWindows, cutWindowsOrFail, type CalibrationSummary, type TokenWindow } from '../data/windows';
import { formatCount, plural } from '../util/format';

/** Default activation budget per engine session, in tokens (--batch-tokens). */
export const DEFAULT_BATCH_TOKENS = 65536;

/** How calibration (and eval) text becomes token windows; every field has a default. */
export interface CalibrationOptions {
  /** Field holding the text in JSON/JSONL/Parquet records (default `text`). */
  textField?: string;
  /** How raw .bin token streams are stored. */
  tokenDType?: TokenDType;
  /** Tokens per window (default 256, as the paper). */
  seqLen?: number;
  /** Tokens between window starts (default = seqLen). */
  stride?: number;
  /** A seeded sample of this many windows. */
  samples?: number;
  /** Seed of the `samples` draw (default 0): the same seed and data give the same windows. */
  seed?: number;
  /** Tokens per engine session: bounds activation memory, never changes results (default 65536). */
  batchTokens?: number;
  /**
   * Stop reading data once this many tokens are kept (--max-calib-tokens; default
   * DEFAULT_MAX_CALIB_TOKENS = 4,194,304): bounds memory and time on data of any size, endless
   * streams included. Reaching it is reported in the summary (`tokenLimit`) and as a warning.
   */
  maxCalibTokens?: number;
  /** Where `-` reads from (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
  /** One line for people while reading (files a folder held that are not data). */
  onNote?: (message: string) => void;
}

/**
 * Below this many windows a layer ranking is mostly noise: Block Influence is a mean over
 * tokens, and a handful of short windows gives layers whose means differ by less than their
 * spread from window to window (the paper scores far more text).
 */
export const MIN_CALIBRATION_WINDOWS = 16;

/** Warnings about calibration data that scores, but too little to trust the ranking. */
export function calibrationWarnings(summary: CalibrationSummary): string[] {
  const capped = summary.tokenLimit !== undefined ? [tokenLimitMessage(summary.tokenLimit)] : [];
  if (summary.windows >= MIN_CALIBRATION_WINDOWS) return capped;
  const n = summary.windows;
  return [
    ...capped,
    `only ${plural(n, 'calibration window')} (${plural(summary.tokensUsed, 'token')}): with fewer than ${MIN_CALIBRATION_WINDOWS} windows the layer ranking is mostly noise; give more calibration data`,
  ];
}

/** The note when reading stopped at --max-calib-tokens (stderr, report warnings); `noun` names the data ("--eval data"). */
export function tokenLimitMessage(limit: number, noun = 'calibration data'): string {
  return `${noun} reached the --max-calib-tokens limit of ${formatCount(limit)} tokens: the rest was not read (raise the limit to use more)`;
}

/** Calibration data loaded for a model: the sources, the windows, their summary and the batches. */
export interface LoadedWindows {
  sources: string[];
  windows: TokenWindow[];
  summary: CalibrationSummary;
  /** The windows' ids in batches of at most batchTokens tokens. */
  batches: Int32Array[][];
}

/** `what` names the data in errors ("calibration data", "--eval data"). */
/** `onTokenize` follows the tokenizer through the documents (the slow part of loading text). */
export async function loadWindows(ckpt: Checkpoint, sources: string | readonly string[], opts: CalibrationOptions, what: string, onTokenize?: (p: TokenizeProgress) => void | Promise<void>): Promise<LoadedWindows> {
  const list = typeof sources === 'string' ? [sources] : [...sources];
  const windowOptions = {
    seqLen: opts.seqLen,
    stride: opts.stride,
    samples: opts.samples,
    seed: opts.seed,
    maxPositionEmbeddings: ckpt.config.maxPositionEmbeddings,
  };
  // Validates --seq-len/--stride/--samples against the model before any data is read.
  cutWindows([], windowOptions);
  const loaded = await loadCalibration(list, {
    maxTokens: opts.maxCalibTokens,
    textField: opts.textField,
    tokenDtype: opts.tokenDType,
    bosTokenId: ckpt.config.bosTokenId,
    vocabSize: ckpt.config.vocabSize,
    modelDir: ckpt.dir,
    stdin: opts.stdin,
    onNote: opts.onNote,
    onProgress: onTokenize,
  });
  const { windows, summary } = cutWindowsOrFail(loaded.documents, `${what} ${list.join(', ')}`, windowOptions);
  if (loaded.limitReached) summary.tokenLimit = loaded.maxTokens;
  const batches = batchWindows(windows, opts.batchTokens ?? DEFAULT_BATCH_TOKENS).map((b) => b.map((w) => w.ids));
  return { sources: list, windows, summary, batches };
}
