/**
 * Calibration sources -> documents -> token ids.
 *
 * A source is a file, a folder, or `-` (stdin, read as text). Files are read by extension:
 *   .txt .md .text  text (one document per file, or split at `<|endoftext|>` lines; textFile.ts)
 *   .jsonl / .json  records with a text field or id arrays (jsonSource.ts)
 *   .parquet        a string or id-list column (parquetSource.ts)
 *   .bin            raw uint16/uint32 token stream, only with --token-dtype (tokenStream.ts)
 * A file with no extension is read as text (process substitution: `--calib <(zcat x.gz)`). A
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
import { ShortGptError } from '../errors';
import { ACCEPTED_DATA_KINDS, checkNotBinary, dataKindOf, TEXT_EXTENSIONS, unknownKindError } from './dataKinds';
import { DEFAULT_TEXT_FIELD, type CalibrationDocument, type SourceOptions } from './documents';
import { parseJsonDocuments, parseJsonlDocuments } from './jsonSource';
import { readParquetDocuments } from './parquetSource';
import { splitTextDocuments } from './textFile';
import { parseTokenStream } from './tokenStream';
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

function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new ShortGptError('ERR_DATA_UNREADABLE', `cannot read calibration file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeText(bytes: Uint8Array, file: string): string {
  try {
    return utf8.decode(bytes).replace(/^\uFEFF/, '');
  } catch (e) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file} is not UTF-8 text (save it as UTF-8); for a raw token stream pass --token-dtype uint16|uint32 and name it .bin. ${ACCEPTED_DATA_KINDS}`, { cause: e });
  }
}

async function readStdin(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** Text of known encoding: refuses binary bytes first, then decodes strictly. */
function readText(bytes: Uint8Array, file: string): string {
  checkNotBinary(bytes, file);
  return decodeText(bytes, file);
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
  const shown = skipped.slice(0, 5).map((p) => path.relative(dir, p)).join(', ');
  const more = skipped.length > 5 ? ` and ${skipped.length - 5} more` : '';
  const bin = !opts.tokenDtype && skipped.some((p) => path.extname(p).toLowerCase() === '.bin') ? ' (.bin token streams need --token-dtype)' : '';
  return `folder ${dir}: skipped ${skipped.length} file${skipped.length === 1 ? '' : 's'} that ${skipped.length === 1 ? 'is' : 'are'} not data: ${shown}${more}${bin}`;
}

async function readFileDocuments(file: string, opts: SourceOptions): Promise<CalibrationDocument[]> {
  const kind = dataKindOf(file);
  if (kind === undefined) throw unknownKindError(file);
  const field = opts.textField ?? DEFAULT_TEXT_FIELD;
  if (kind === 'parquet') return readParquetDocuments(file, field);
  if (kind === 'tokens') {
    if (!opts.tokenDtype) {
      throw new ShortGptError('ERR_DATA_FORMAT', `${file} looks like a raw token stream (.bin): say how ids are stored with --token-dtype uint16|uint32`);
    }
    return parseTokenStream(readBytes(file), file, opts.tokenDtype, opts.bosTokenId);
  }
  const text = readText(readBytes(file), file);
  if (kind === 'jsonl') return parseJsonlDocuments(text, file, field);
  if (kind === 'json') return parseJsonDocuments(text, file, field);
  return splitTextDocuments(text, file);
}

/** Read every source, in the order given, into documents. */
export async function readCalibrationDocuments(sources: readonly string[], opts: ReadSourcesOptions = {}): Promise<CalibrationDocument[]> {
  if (sources.length === 0) throw new ShortGptError('ERR_DATA_EMPTY', 'no calibration data given');
  const docs: CalibrationDocument[] = [];
  for (const source of sources) {
    if (source === '-') {
      const bytes = await readStdin(opts.stdin ?? process.stdin);
      docs.push(...splitTextDocuments(readText(bytes, '<stdin>'), '<stdin>'));
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(source);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_DATA_MISSING' : 'ERR_DATA_UNREADABLE';
      throw new ShortGptError(code, `calibration data ${source} ${code === 'ERR_DATA_MISSING' ? 'does not exist' : `cannot be read: ${(e as Error).message}`}`, { cause: e });
    }
    if (stat.isDirectory()) {
      const { files, skipped } = listFolder(source, opts);
      if (files.length === 0) {
        const other = skipped.length ? `; it holds ${skipped.length} other file${skipped.length === 1 ? '' : 's'}, e.g. ${path.relative(source, skipped[0]!)}` : '';
        throw new ShortGptError('ERR_DATA_EMPTY', `calibration folder ${source} holds no .txt, .md, .text, .jsonl, .json or .parquet files${opts.tokenDtype ? ' (or .bin)' : ''}${other}. ${ACCEPTED_DATA_KINDS}`);
      }
      if (skipped.length > 0) opts.onNote?.(skippedNote(source, skipped, opts));
      for (const f of files) docs.push(...(await readFileDocuments(f, opts)));
    } else {
      docs.push(...(await readFileDocuments(source, opts)));
    }
  }
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
  documentsTotal: number;
  /** UTF-8 bytes of text encoded so far, and in all: the tokenizer's work, for progress and ETAs. */
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Documents -> ids. Text is encoded as one document each (BOS/EOS per tokenizer_config);
 * pre-tokenized ids are used as they are. Every id is checked against the vocabulary.
 */
export async function tokenizeDocuments(docs: readonly CalibrationDocument[], opts: TokenizeOptions): Promise<TokenizedDocument[]> {
  let tokenizer = opts.tokenizer;
  const out: TokenizedDocument[] = [];
  const { onProgress } = opts;
  const textBytes = (d: CalibrationDocument): number => (d.kind === 'text' ? Buffer.byteLength(d.text, 'utf8') : 0);
  const progress = { documentsDone: 0, documentsTotal: docs.length, bytesDone: 0, bytesTotal: onProgress ? docs.reduce((n, d) => n + textBytes(d), 0) : 0 };
  await onProgress?.({ ...progress });
  for (const doc of docs) {
    let ids: number[];
    if (doc.kind === 'text') {
      if (!tokenizer) {
        if (opts.modelDir === undefined) {
          throw new ShortGptError('ERR_NO_TOKENIZER', `${doc.origin} is text, but no tokenizer was given to encode it`);
        }
        tokenizer = await loadTokenizer(opts.modelDir);
      }
      ids = tokenizer.encode(doc.text);
    } else {
      ids = doc.ids;
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= opts.vocabSize) {
        throw new ShortGptError('ERR_DATA_TOKEN_ID', `${doc.origin}: token ${i} is ${id}, outside the model's vocabulary [0, ${opts.vocabSize})`);
      }
    }
    if (ids.length > 0) out.push({ ids, origin: doc.origin });
    if (onProgress) {
      progress.documentsDone++;
      progress.bytesDone += textBytes(doc);
      await onProgress({ ...progress });
    }
  }
  return out;
}

/** Sources -> tokenized documents in one call (what `score` and `prune` use). */
export async function loadCalibrationDocuments(sources: readonly string[], opts: ReadSourcesOptions & TokenizeOptions): Promise<TokenizedDocument[]> {
  const docs = await readCalibrationDocuments(sources, opts);
  const tokenized = await tokenizeDocuments(docs, opts);
  if (tokenized.length === 0) {
    throw new ShortGptError('ERR_DATA_EMPTY', `calibration data ${sources.join(', ')} holds no documents (every file, record or row is empty)`);
  }
  return tokenized;
}
