/**
 * Calibration sources -> documents -> token ids.
 *
 * A source is a file, a folder, or `-` (stdin, read as text). Files are read by extension:
 *   .txt .md .text  text (one document per file, or split at `<|endoftext|>` lines; textFile.ts)
 *   .jsonl / .json  records with a text field or id arrays (jsonSource.ts)
 *   .parquet        a string or id-list column (parquetSource.ts)
 *   .bin            raw uint16/uint32 token stream, only with --token-dtype (tokenStream.ts)
 * A file with no extension is read as text (process substitution: `--calib <(zcat x.gz)`, the
 * one kind of pipe read by path; a named FIFO, a device or other non-regular file is refused). A
 * file with any other extension (.csv, .gz, ...) is refused, naming the accepted kinds, and so
 * is text with a NUL byte in its first chunk (binary) or that is not UTF-8 (dataKinds.ts).
 * Folders are walked recursively in sorted path order (code-unit order, the same on every
 * machine), taking only the extensions above; hidden entries (names starting with '.') are
 * skipped silently, other files (no extension, other extensions, .bin without --token-dtype)
 * are skipped with one note naming them, since a dataset folder often holds a LICENSE or a
 * .gitattributes beside the data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError, UsageError } from '../errors';
import { printable } from '../util/printable';
import { FILE_LIMITS, readFileLimited, statRegular } from '../util/readLimited';
import { ACCEPTED_DATA_KINDS, dataKindOf, TEXT_EXTENSIONS, unknownKindError } from './dataKinds';
import { DEFAULT_TEXT_FIELD, type CalibrationDocument, type SourceOptions } from './documents';
import { jsonlDocuments, parseJsonDocuments } from './jsonSource';
import { parquetDocuments } from './parquetSource';
import { fileChunks, streamChunks, unreadable, utf8Chunks } from './readChunks';
import { splitLongText, type TextPiece } from './textPieces';
import { TextDocumentSplitter, type TextUnit } from './textStream';
import { tokenStreamUnits, type TokenUnit } from './tokenStream';
import { loadTokenizer, type Tokenizer } from './tokenizer';

const FOLDER_EXTENSIONS = new Set([...TEXT_EXTENSIONS, '.jsonl', '.json', '.parquet']);

/** Options of readCalibrationDocuments: the source options plus stdin and notes. */
export interface ReadSourcesOptions extends SourceOptions {
  /** Where `-` reads from (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
  /** One line for people, e.g. the files a folder held that are not data. */
  onNote?: (message: string) => void;
}

/** A document as token ids, ready to cut into windows. */
export interface TokenizedDocument {
  ids: number[];
  origin: string;
}

function listFolder(dir: string, opts: SourceOptions): { files: string[]; skipped: string[] } {
  const wanted = new Set(FOLDER_EXTENSIONS);
  if (opts.tokenDtype) wanted.add('.bin');
  const out: string[] = [];
  const skipped: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      throw new ShortGptError('ERR_DATA_UNREADABLE', `cannot list calibration folder ${d}: ${(e as Error).message}`, { cause: e });
    }
    for (const ent of entries) {
      if (ent.name.startsWith('.')) continue;
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile() && wanted.has(path.extname(ent.name).toLowerCase())) out.push(p);
      else skipped.push(p);
    }
  };
  walk(dir);
  const byPath = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return { files: out.sort(byPath), skipped: skipped.sort(byPath) };
}

function skippedNote(dir: string, skipped: readonly string[], opts: SourceOptions): string {
  // Names from the folder reach the terminal: escaped.
  const shown = skipped.slice(0, 5).map((p) => printable(path.relative(dir, p))).join(', ');
  const more = skipped.length > 5 ? ` and ${skipped.length - 5} more` : '';
  const bin = !opts.tokenDtype && skipped.some((p) => path.extname(p).toLowerCase() === '.bin') ? ' (.bin token streams need --token-dtype)' : '';
  return `folder ${dir}: skipped ${skipped.length} file${skipped.length === 1 ? '' : 's'} that ${skipped.length === 1 ? 'is' : 'are'} not data: ${shown}${more}${bin}`;
}


/**
 * What the readers yield: a document in pieces. A unit with `first` starts a document; the units
 * after it, up to the next `first`, continue it. Text pieces are cut where tokenizing them one by
 * one gives the ids of the whole document (textPieces.ts); token pieces are cut anywhere.
 */
export type DocumentUnit = TextUnitOf<'text'> | TokenUnit;
type TextUnitOf<K> = TextUnit & { kind: K };

/** A whole document (JSON/JSONL record, Parquet row) as units: long text in pieces. */
function* documentUnits(doc: CalibrationDocument): Generator<DocumentUnit> {
  if (doc.kind === 'tokens') {
    yield { kind: 'tokens', ids: doc.ids, origin: doc.origin, first: true };
    return;
  }
  for (const piece of splitLongText(doc.text)) yield { kind: 'text', ...piece, origin: doc.origin };
}

/** Plain text in chunks -> units, documents split at separator lines and cut into pieces as they arrive. */
async function* textUnits(chunks: AsyncIterable<string>, origin: string): AsyncGenerator<DocumentUnit> {
  const splitter = new TextDocumentSplitter(origin);
  for await (const chunk of chunks) for (const u of splitter.push(chunk)) yield { kind: 'text', ...u };
  for (const u of splitter.end()) yield { kind: 'text', ...u };
}

function checkTokenStreamSize(file: string, opts: SourceOptions): void {
  const width = opts.tokenDtype === 'uint16' ? 2 : 4;
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw unreadable(file, e);
  }
  if (size % width !== 0) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: ${size} bytes is not a whole number of ${opts.tokenDtype} tokens (${width} bytes each); is --token-dtype right?`);
  }
}

async function* fileUnits(file: string, opts: SourceOptions): AsyncGenerator<DocumentUnit> {
  const kind = dataKindOf(file);
  if (kind === undefined) throw unknownKindError(file);
  const field = opts.textField ?? DEFAULT_TEXT_FIELD;
  if (kind === 'tokens') {
    if (!opts.tokenDtype) {
      throw new ShortGptError('ERR_DATA_FORMAT', `${file} looks like a raw token stream (.bin): say how ids are stored with --token-dtype uint16|uint32`);
    }
    checkTokenStreamSize(file, opts);
    yield* tokenStreamUnits(fileChunks(file), file, opts.tokenDtype, opts.bosTokenId);
    return;
  }
  if (kind === 'parquet') {
    try {
      await statRegular(file, 'calibration data');
    } catch (e) {
      throw unreadable(file, e);
    }
    for await (const doc of parquetDocuments(file, field)) yield* documentUnits(doc);
    return;
  }
  if (kind === 'json') {
    // One JSON value is parsed whole, so its size is bounded; JSON Lines has no such limit.
    let bytes: Buffer;
    try {
      bytes = await readFileLimited(file, 'calibration JSON file', FILE_LIMITS.wholeJsonData);
    } catch (e) {
      if ((e as ShortGptError).code === 'ERR_FILE_TOO_LARGE') {
        throw new ShortGptError('ERR_FILE_TOO_LARGE', `${(e as Error).message}: a .json file is parsed whole; give large data as JSON Lines (.jsonl, one record per line), which is read as a stream`);
      }
      throw unreadable(file, e);
    }
    let text = '';
    for await (const t of utf8Chunks([bytes], file)) text += t;
    for (const doc of parseJsonDocuments(text, file, field)) yield* documentUnits(doc);
    return;
  }
  const text = utf8Chunks(fileChunks(file), file);
  if (kind === 'jsonl') {
    for await (const doc of jsonlDocuments(text, file, field)) yield* documentUnits(doc);
    return;
  }
  yield* textUnits(text, file);
}

/** Every source, in the order given, as document units, read lazily: stop iterating and the rest is never read. */
export async function* readCalibrationUnits(sources: readonly string[], opts: ReadSourcesOptions = {}): AsyncGenerator<DocumentUnit> {
  if (sources.length === 0) throw new ShortGptError('ERR_DATA_EMPTY', 'no calibration data given');
  for (const source of sources) {
    if (source === '-') {
      yield* textUnits(utf8Chunks(streamChunks(opts.stdin ?? process.stdin), '<stdin>'), '<stdin>');
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(source);
    } catch (e) {
      throw unreadable(source, e);
    }
    if (stat.isDirectory()) {
      const { files, skipped } = listFolder(source, opts);
      if (files.length === 0) {
        const other = skipped.length ? `; it holds ${skipped.length} other file${skipped.length === 1 ? '' : 's'}, e.g. ${printable(path.relative(source, skipped[0]!))}` : '';
        throw new ShortGptError('ERR_DATA_EMPTY', `calibration folder ${source} holds no .txt, .md, .text, .jsonl, .json or .parquet files${opts.tokenDtype ? ' (or .bin)' : ''}${other}. ${ACCEPTED_DATA_KINDS}`);
      }
      if (skipped.length > 0) opts.onNote?.(skippedNote(source, skipped, opts));
      for (const f of files) yield* fileUnits(f, opts);
    } else {
      yield* fileUnits(source, opts);
    }
  }
}

/**
 * Read every source, in the order given, into whole documents. Everything is read and held:
 * for data of unknown size use loadCalibration, which stops at a token limit.
 */
export async function readCalibrationDocuments(sources: readonly string[], opts: ReadSourcesOptions = {}): Promise<CalibrationDocument[]> {
  const docs: CalibrationDocument[] = [];
  const parts: string[] = [];
  let current: CalibrationDocument | undefined;
  const finish = (): void => {
    if (current?.kind === 'text') current.text = parts.join('');
    if (current) docs.push(current);
    current = undefined;
    parts.length = 0;
  };
  for await (const u of readCalibrationUnits(sources, opts)) {
    if (u.first) {
      finish();
      current = u.kind === 'text' ? { kind: 'text', text: '', origin: u.origin } : { kind: 'tokens', ids: [], origin: u.origin };
    }
    if (u.kind === 'text') parts.push(u.text);
    else if (current?.kind === 'tokens') for (const id of u.ids) current.ids.push(id);
  }
  finish();
  return docs;
}

/** Options of tokenizeDocuments: the vocabulary bound, the tokenizer (or where to load it) and progress. */
export interface TokenizeOptions {
  /** Ids must be below this (config.json vocab_size). */
  vocabSize: number;
  /** The tokenizer for text documents; loaded from `modelDir` on first need when absent. */
  tokenizer?: Tokenizer;
  modelDir?: string;
  /**
   * Called before the first document and after each one (text documents count their UTF-8
   * bytes; id documents 0). A promise it returns is awaited: encoding is synchronous, so this is
   * how a caller lets the event loop run now and then (a terminal resize, Ctrl-C).
   */
  onProgress?: (p: TokenizeProgress) => void | Promise<void>;
}

export interface TokenizeProgress {
  documentsDone: number;
  /** Documents in all, when known before reading (not when data is streamed: loadCalibration). */
  documentsTotal?: number;
  /** UTF-8 bytes of text encoded so far, and in all (an estimate when streamed): the tokenizer's work, for progress and ETAs. */
  bytesDone: number;
  bytesTotal: number;
}

/** One text unit -> ids with the tokenizer's encodePiece; a tokenizer without it gets whole documents (see Encoder). */
class Encoder {
  private tokenizer: Tokenizer | undefined;
  private pending: string[] = [];
  constructor(private readonly opts: TokenizeOptions) {
    this.tokenizer = opts.tokenizer;
  }
  async encode(u: TextPiece & { origin: string }): Promise<number[]> {
    if (!this.tokenizer) {
      if (this.opts.modelDir === undefined) throw new ShortGptError('ERR_NO_TOKENIZER', `${u.origin} is text, but no tokenizer was given to encode it`);
      this.tokenizer = await loadTokenizer(this.opts.modelDir);
    }
    const tok = this.tokenizer;
    if (tok.encodePiece) return tok.encodePiece(u);
    // A caller's tokenizer without encodePiece: join the pieces and encode the document at its end.
    this.pending.push(u.text);
    if (!u.last) return [];
    const text = this.pending.join('');
    this.pending = [];
    return tok.encode(text);
  }
}

function checkIds(ids: readonly number[], origin: string, offset: number, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new ShortGptError('ERR_DATA_TOKEN_ID', `${origin}: token ${offset + i} is ${id}, outside the model's vocabulary [0, ${vocabSize})`);
    }
  }
}

/**
 * Documents -> ids. Text is encoded as one document each (BOS/EOS per tokenizer_config), long
 * documents piece by piece (textPieces.ts); pre-tokenized ids are used as they are. Every id is
 * checked against the vocabulary.
 */
export async function tokenizeDocuments(docs: readonly CalibrationDocument[], opts: TokenizeOptions): Promise<TokenizedDocument[]> {
  const out: TokenizedDocument[] = [];
  const { onProgress } = opts;
  const encoder = new Encoder(opts);
  const textBytes = (d: CalibrationDocument): number => (d.kind === 'text' ? Buffer.byteLength(d.text, 'utf8') : 0);
  const progress = { documentsDone: 0, documentsTotal: docs.length, bytesDone: 0, bytesTotal: onProgress ? docs.reduce((n, d) => n + textBytes(d), 0) : 0 };
  await onProgress?.({ ...progress });
  for (const doc of docs) {
    let ids: number[];
    if (doc.kind === 'text') {
      ids = [];
      for (const piece of splitLongText(doc.text)) for (const id of await encoder.encode({ ...piece, origin: doc.origin })) ids.push(id);
    } else {
      ids = doc.ids;
    }
    checkIds(ids, doc.origin, 0, opts.vocabSize);
    if (ids.length > 0) out.push({ ids, origin: doc.origin });
    if (onProgress) {
      progress.documentsDone++;
      progress.bytesDone += textBytes(doc);
      await onProgress({ ...progress });
    }
  }
  return out;
}

/**
 * Default --max-calib-tokens: 4,194,304 tokens (16,384 windows of 256), far more than layer
 * scores need (the paper's rankings settle on much less) and small enough to bound memory
 * (~100 MB of ids and windows) and tokenizing time (seconds to a minute) on any input, endless
 * ones included (`--calib -` from a pipe that never closes).
 */
export const DEFAULT_MAX_CALIB_TOKENS = 2 ** 22;

/**
 * Characters read per token kept before reading stops even below the token limit: text that
 * gives (almost) no tokens, e.g. endless whitespace under a tokenizer that drops it, must end too.
 */
const MAX_CHARS_PER_TOKEN = 64;

/** Options of loadCalibration: reading, tokenizing, and the token limit. */
export interface LoadCalibrationOptions extends ReadSourcesOptions, TokenizeOptions {
  /** Stop reading once this many tokens are kept (default DEFAULT_MAX_CALIB_TOKENS). */
  maxTokens?: number;
}

/** Tokenized documents, and whether reading stopped at the token limit. */
export interface LoadedCalibration {
  documents: TokenizedDocument[];
  /** The token limit in force. */
  maxTokens: number;
  /** Reading stopped at maxTokens (the data held more; the last document kept is cut short). */
  limitReached: boolean;
}

function totalSize(sources: readonly string[]): number {
  let n = 0;
  for (const s of sources) {
    try {
      const st = fs.statSync(s);
      if (st.isFile()) n += st.size;
    } catch {
      // Reported when the source is read.
    }
  }
  return n;
}

/**
 * Sources -> tokenized documents, read and tokenized as a stream: memory follows the tokens kept,
 * and reading stops once `maxTokens` are kept (the last document is cut there).
 */
export async function loadCalibration(sources: readonly string[], opts: LoadCalibrationOptions): Promise<LoadedCalibration> {
  const maxTokens = opts.maxTokens ?? DEFAULT_MAX_CALIB_TOKENS;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new UsageError(`--max-calib-tokens must be a positive integer, got ${maxTokens}`);
  const encoder = new Encoder(opts);
  const documents: TokenizedDocument[] = [];
  let current: TokenizedDocument | undefined;
  let kept = 0;
  let chars = 0;
  let limitReached = false;
  const { onProgress } = opts;
  // Bytes of all named files (folders and stdin unknown), at most what the limit lets be read: an estimate for ETAs.
  const estimate = Math.min(totalSize(sources), maxTokens * 4);
  const progress = { documentsDone: 0, bytesDone: 0, bytesTotal: estimate };
  const finish = (): void => {
    if (current && current.ids.length > 0) documents.push(current);
    if (current) progress.documentsDone++;
    current = undefined;
  };
  await onProgress?.({ ...progress });
  for await (const u of readCalibrationUnits(sources, opts)) {
    if (u.first) {
      finish();
      current = { ids: [], origin: u.origin };
    }
    const doc = current as TokenizedDocument;
    const ids = u.kind === 'text' ? await encoder.encode(u) : u.ids;
    if (kept >= maxTokens && ids.length > 0) {
      limitReached = true;
      break;
    }
    checkIds(ids, doc.origin, doc.ids.length, opts.vocabSize);
    const take = Math.min(ids.length, maxTokens - kept);
    for (let i = 0; i < take; i++) doc.ids.push(ids[i]);
    kept += take;
    if (take < ids.length) {
      limitReached = true;
      break;
    }
    if (u.kind === 'text') {
      chars += u.text.length;
      if (chars > MAX_CHARS_PER_TOKEN * maxTokens) {
        limitReached = true;
        break;
      }
    }
    if (onProgress) {
      if (u.kind === 'text') progress.bytesDone += Buffer.byteLength(u.text, 'utf8');
      progress.bytesTotal = Math.max(progress.bytesTotal, progress.bytesDone);
      await onProgress({ ...progress });
    }
  }
  finish();
  await onProgress?.({ ...progress, bytesTotal: progress.bytesDone });
  if (documents.length === 0) {
    throw new ShortGptError('ERR_DATA_EMPTY', `calibration data ${sources.join(', ')} holds no documents (every file, record or row is empty)`);
  }
  return { documents, maxTokens, limitReached };
}

/** Sources -> tokenized documents in one call (loadCalibration's documents, up to `maxTokens`). */
export async function loadCalibrationDocuments(sources: readonly string[], opts: LoadCalibrationOptions): Promise<TokenizedDocument[]> {
  return (await loadCalibration(sources, opts)).documents;
}
