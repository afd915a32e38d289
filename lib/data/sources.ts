/**
 * Calibration sources -> documents -> token ids.
 *
 * A source is a file, a folder, or `-` (stdin, read as text). Files are read by extension:
 *   .txt .md .text  text (one document per file, or split at `<|endoftext|>` lines; textFile.ts)
 *   .jsonl / .json  records with a text field or id arrays (jsonSource.ts)
 *   .parquet        a string or id-list column (parquetSource.ts)
 *   .bin            raw uint16/uint32 token stream, only with --token-dtype (tokenStream.ts)
 * A file named explicitly with another extension is read as text. Folders are walked
 * recursively in sorted path order (code-unit order, the same on every machine), taking only the
 * extensions above and skipping hidden entries (names starting with '.').
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { DEFAULT_TEXT_FIELD, type CalibrationDocument, type SourceOptions } from './documents';
import { parseJsonDocuments, parseJsonlDocuments } from './jsonSource';
import { readParquetDocuments } from './parquetSource';
import { splitTextDocuments } from './textFile';
import { parseTokenStream } from './tokenStream';
import { loadTokenizer, type Tokenizer } from './tokenizer';

const TEXT_EXTENSIONS = new Set(['.txt', '.md', '.text']);
const FOLDER_EXTENSIONS = new Set([...TEXT_EXTENSIONS, '.jsonl', '.json', '.parquet']);

export interface ReadSourcesOptions extends SourceOptions {
  /** Where `-` reads from (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
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
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file} is not UTF-8 text; for a raw token stream pass --token-dtype uint16|uint32 and name it .bin`, { cause: e });
  }
}

async function readStdin(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

function listFolder(dir: string, opts: SourceOptions): string[] {
  const wanted = new Set(FOLDER_EXTENSIONS);
  if (opts.tokenDtype) wanted.add('.bin');
  const out: string[] = [];
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
    }
  };
  walk(dir);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function readFileDocuments(file: string, opts: SourceOptions): Promise<CalibrationDocument[]> {
  const ext = path.extname(file).toLowerCase();
  const field = opts.textField ?? DEFAULT_TEXT_FIELD;
  if (ext === '.parquet') return readParquetDocuments(file, field);
  if (ext === '.bin') {
    if (!opts.tokenDtype) {
      throw new ShortGptError('ERR_DATA_FORMAT', `${file} looks like a raw token stream (.bin): say how ids are stored with --token-dtype uint16|uint32`);
    }
    return parseTokenStream(readBytes(file), file, opts.tokenDtype, opts.bosTokenId);
  }
  const text = decodeText(readBytes(file), file);
  if (ext === '.jsonl') return parseJsonlDocuments(text, file, field);
  if (ext === '.json') return parseJsonDocuments(text, file, field);
  return splitTextDocuments(text, file);
}

/** Read every source, in the order given, into documents. */
export async function readCalibrationDocuments(sources: readonly string[], opts: ReadSourcesOptions = {}): Promise<CalibrationDocument[]> {
  if (sources.length === 0) throw new ShortGptError('ERR_DATA_EMPTY', 'no calibration data given');
  const docs: CalibrationDocument[] = [];
  for (const source of sources) {
    if (source === '-') {
      const bytes = await readStdin(opts.stdin ?? process.stdin);
      docs.push(...splitTextDocuments(decodeText(bytes, '<stdin>'), '<stdin>'));
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
      const files = listFolder(source, opts);
      if (files.length === 0) {
        throw new ShortGptError('ERR_DATA_EMPTY', `calibration folder ${source} holds no .txt, .md, .jsonl, .json or .parquet files${opts.tokenDtype ? ' (or .bin)' : ''}`);
      }
      for (const f of files) docs.push(...(await readFileDocuments(f, opts)));
    } else {
      docs.push(...(await readFileDocuments(source, opts)));
    }
  }
  return docs;
}

export interface TokenizeOptions {
  /** Ids must be below this (config.json vocab_size). */
  vocabSize: number;
  /** The tokenizer for text documents; loaded from `modelDir` on first need when absent. */
  tokenizer?: Tokenizer;
  modelDir?: string;
}

/**
 * Documents -> ids. Text is encoded as one document each (BOS/EOS per tokenizer_config);
 * pre-tokenized ids are used as they are. Every id is checked against the vocabulary.
 */
export async function tokenizeDocuments(docs: readonly CalibrationDocument[], opts: TokenizeOptions): Promise<TokenizedDocument[]> {
  let tokenizer = opts.tokenizer;
  const out: TokenizedDocument[] = [];
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
