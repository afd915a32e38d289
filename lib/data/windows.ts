/**
 * Documents -> fixed-length token windows, the unit the engine scores (ShortGPT §4: 256-token
 * windows of PG19).
 *
 * Rules:
 * - Windows start at 0, stride, 2*stride, ... of a document and hold up to seqLen tokens; the
 *   last window of a document is the first one that reaches its end, so with stride < seqLen no
 *   window is a tail already inside the previous one. A window never spans two documents.
 * - A piece shorter than 2 tokens is dropped: a lone token has no next token to predict and a
 *   one-token window adds nothing to Block Influence a longer window would not. Pieces of 2 or
 *   more tokens are kept, even far below seqLen.
 * - `prefixBos`: every window begins with that id; a document's own leading BOS is set aside and
 *   windows are cut from the rest with seqLen - 1 content tokens each (the "<s> + 511 tokens"
 *   windows of the stories260k reference perplexities).
 * - `truncate`: only the first window of each document (the golden token windows are the first
 *   256 tokens of each story; the stories260k README's reference perplexities the first 512).
 * - `samples`: a seeded sample, without replacement, of that many windows out of all of them;
 *   the chosen windows keep their original (document, position) order. The same data, seqLen,
 *   stride, samples and seed always give the same windows.
 */
import { ShortGptError, UsageError } from '../errors';
import { mulberry32 } from '../util/prng';
import { formatCount, plural } from '../util/format';

/** Tokens per calibration window by default: 256, as in the paper. */
export const DEFAULT_SEQ_LEN = 256;
export const MIN_WINDOW_TOKENS = 2;

/** How cutWindows cuts: window length, stride, a seeded sample, the model's context limit. */
export interface WindowOptions {
  /** Tokens per window (--seq-len, default 256). */
  seqLen?: number;
  /** Tokens between window starts (--stride, default = seqLen). */
  stride?: number;
  /** Keep a seeded sample of this many windows (--samples). */
  samples?: number;
  /** PRNG seed for --samples (--seed, default 0). */
  seed?: number;
  /** The model's max_position_embeddings: seqLen may not exceed it. */
  maxPositionEmbeddings?: number;
  /** Start every window with this id (usually BOS). */
  prefixBos?: number;
  /** Keep only each document's first window, i.e. truncate documents to seqLen. */
  truncate?: boolean;
}

/** One calibration window: token ids cut from one document. */
export interface TokenWindow {
  /** Index of the document it was cut from. */
  document: number;
  /** Position in that document of the window's first content token. */
  start: number;
  /** Leading tokens shared with the previous window of the same document (stride < seqLen). */
  overlap: number;
  ids: Int32Array;
}

/** How calibration data became windows (report.json `calibration.summary`). */
export interface CalibrationSummary {
  documents: number;
  /** Tokens in all documents. */
  tokens: number;
  /** Windows kept (after --samples). */
  windows: number;
  /** Windows before sampling. */
  windowsAvailable: number;
  /** Tokens in the kept windows (overlapping tokens counted in each window). */
  tokensUsed: number;
  seqLen: number;
  stride: number;
  samples: number | null;
  seed: number | null;
  /** Present when reading stopped at --max-calib-tokens: the limit (the data held more). */
  tokenLimit?: number;
}

/** What cutWindows returns: the windows and their summary. */
export interface WindowedData {
  windows: TokenWindow[];
  summary: CalibrationSummary;
}

/** The sample's PRNG (mulberry32): its sequence is fixed for all time per seed. */
export const seededRandom = mulberry32;

/** k distinct indices of [0, n), sorted: a partial Fisher-Yates shuffle. */
export function sampleIndices(n: number, k: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const rand = seededRandom(seed);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${v}`);
}

/** Cuts tokenized documents into windows of at most `seqLen` tokens every `stride` tokens, then keeps a seeded sample of `samples` when asked (see the rules at the top of this file). */
export function cutWindows(documents: readonly { ids: ArrayLike<number> }[], opts: WindowOptions = {}): WindowedData {
  const seqLen = opts.seqLen ?? DEFAULT_SEQ_LEN;
  checkInt('seq-len', seqLen, MIN_WINDOW_TOKENS);
  if (opts.maxPositionEmbeddings !== undefined && seqLen > opts.maxPositionEmbeddings) {
    throw new ShortGptError('ERR_SEQ_LEN', `--seq-len ${seqLen} is above the model's max_position_embeddings ${opts.maxPositionEmbeddings}`);
  }
  const bos = opts.prefixBos;
  const content = bos === undefined ? seqLen : seqLen - 1;
  const stride = opts.stride ?? content;
  checkInt('stride', stride, 1);
  if (opts.samples !== undefined) checkInt('samples', opts.samples, 1);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be an integer, got ${seed}`);

  const all: TokenWindow[] = [];
  let tokens = 0;
  documents.forEach((doc, d) => {
    const ids = doc.ids;
    tokens += ids.length;
    const first = bos !== undefined && ids.length > 0 && ids[0] === bos ? 1 : 0;
    const len = ids.length;
    let prevEnd = -1;
    for (let start = first; start < len; start += stride) {
      const end = Math.min(start + content, len);
      const head = bos === undefined ? 0 : 1;
      if (end - start + head >= MIN_WINDOW_TOKENS) {
        const w = new Int32Array(end - start + head);
        if (head) w[0] = bos as number;
        for (let i = start; i < end; i++) w[i - start + head] = ids[i];
        all.push({ document: d, start, overlap: prevEnd > start ? prevEnd - start : 0, ids: w });
      }
      prevEnd = end;
      if (end === len || opts.truncate) break;
    }
  });

  let windows = all;
  if (opts.samples !== undefined && opts.samples < all.length) {
    windows = sampleIndices(all.length, opts.samples, seed).map((i) => all[i]);
  }
  let tokensUsed = 0;
  for (const w of windows) tokensUsed += w.ids.length;
  return {
    windows,
    summary: {
      documents: documents.length,
      tokens,
      windows: windows.length,
      windowsAvailable: all.length,
      tokensUsed,
      seqLen,
      stride,
      samples: opts.samples ?? null,
      seed: opts.samples !== undefined ? seed : null,
    },
  };
}

/** Windows for a data set that must not be empty; `what` names the data in the error. */
export function cutWindowsOrFail(documents: readonly { ids: ArrayLike<number> }[], what: string, opts: WindowOptions = {}): WindowedData {
  const out = cutWindows(documents, opts);
  if (out.windows.length === 0) {
    throw new ShortGptError(
      'ERR_DATA_EMPTY',
      `${what} gives no windows: ${plural(out.summary.documents, 'document')}, ${plural(out.summary.tokens, 'token')} (a window needs at least ${MIN_WINDOW_TOKENS} tokens)`,
    );
  }
  return out;
}

const fmt = formatCount;

/** "24 documents, 6,110 tokens -> 30 windows of <= 256 tokens" (+ sampling, when used). */
export function describeCalibration(s: CalibrationSummary): string {
  let line = `${plural(s.documents, 'document')}, ${plural(s.tokens, 'token')} -> ${plural(s.windows, 'window')} of <= ${fmt(s.seqLen)} tokens`;
  if (s.stride < s.seqLen - 1 || s.stride > s.seqLen) line += `, stride ${fmt(s.stride)}`;
  if (s.windows < s.windowsAvailable) line += ` (a sample of ${fmt(s.windowsAvailable)}, seed ${s.seed})`;
  if (s.tokensUsed !== s.tokens) line += `, ${fmt(s.tokensUsed)} tokens used`;
  if (s.tokenLimit !== undefined) line += ` (stopped at the --max-calib-tokens limit of ${fmt(s.tokenLimit)})`;
  return line;
}
