/**
 * Data sources -> token windows for a given checkpoint, the one path `prune`, `score`, `eval`
 * and the library share: read (text/JSON/JSONL/Parquet/token streams/stdin), tokenize with the
 * model's own tokenizer, cut windows no longer than the model allows, batch by --batch-tokens.
 */
import type { Checkpoint } from '../checkpoint/types';
import type { TokenDType } from '../data/documents';
import { batchWindows } from '../data/batches';
import { loadCalibrationDocuments } from '../data/sources';
import { cutWindows, cutWindowsOrFail, type CalibrationSummary, type TokenWindow } from '../data/windows';

/** Default activation budget per engine session, in tokens (--batch-tokens). */
export const DEFAULT_BATCH_TOKENS = 65536;

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
  seed?: number;
  /** Tokens per engine session: bounds activation memory, never changes results (default 65536). */
  batchTokens?: number;
  /** Where `-` reads from (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

export interface LoadedWindows {
  sources: string[];
  windows: TokenWindow[];
  summary: CalibrationSummary;
  /** The windows' ids in batches of at most batchTokens tokens. */
  batches: Int32Array[][];
}

/** `what` names the data in errors ("calibration data", "--eval data"). */
export async function loadWindows(ckpt: Checkpoint, sources: string | readonly string[], opts: CalibrationOptions, what: string): Promise<LoadedWindows> {
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
  const docs = await loadCalibrationDocuments(list, {
    textField: opts.textField,
    tokenDtype: opts.tokenDType,
    bosTokenId: ckpt.config.bosTokenId,
    vocabSize: ckpt.config.vocabSize,
    modelDir: ckpt.dir,
    stdin: opts.stdin,
  });
  const { windows, summary } = cutWindowsOrFail(docs, `${what} ${list.join(', ')}`, windowOptions);
  const batches = batchWindows(windows, opts.batchTokens ?? DEFAULT_BATCH_TOKENS).map((b) => b.map((w) => w.ids));
  return { sources: list, windows, summary, batches };
}
