/**
 * Which files are calibration data, and refusing the rest before they are read as something they
 * are not: a .csv read as plain text (header and commas included) or a binary file decoded as
 * text would be tokenized without complaint and silently change which layers get removed.
 */
import * as path from 'node:path';
import { ShortGptError } from '../errors';

export const TEXT_EXTENSIONS: ReadonlySet<string> = new Set(['.txt', '.md', '.text']);
export const RECORD_EXTENSIONS: ReadonlySet<string> = new Set(['.jsonl', '.json', '.parquet']);
export const TOKEN_STREAM_EXTENSION = '.bin';

/** The sentence every refusal ends with. */
export const ACCEPTED_DATA_KINDS =
  'accepted: text (.txt, .md, .text; or a file with no extension), JSON Lines (.jsonl) or JSON (.json) records with a text field, ' +
  'Parquet (.parquet), raw token streams (.bin with --token-dtype uint16|uint32), a folder of these, or - for stdin';

/** What to do with a few common kinds that are not accepted. */
const HINTS: Record<string, string> = {
  '.csv': 'convert it to JSON Lines, one {"text": ...} record per row (or to plain text)',
  '.tsv': 'convert it to JSON Lines, one {"text": ...} record per row (or to plain text)',
  '.gz': 'decompress it first, or pipe it: zcat FILE | shortgpt-native ... --calib -',
  '.zst': 'decompress it first, or pipe it: zstdcat FILE | shortgpt-native ... --calib -',
  '.xz': 'decompress it first, or pipe it: xzcat FILE | shortgpt-native ... --calib -',
  '.bz2': 'decompress it first, or pipe it: bzcat FILE | shortgpt-native ... --calib -',
  '.zip': 'unpack it and pass the folder',
  '.tar': 'unpack it and pass the folder',
  '.arrow': 'write it as Parquet or JSON Lines',
  '.npy': 'write the ids as a raw .bin token stream (with --token-dtype) or as JSON Lines',
  '.pdf': 'extract its text into a .txt file',
  '.html': 'extract its text into a .txt file',
};

export type DataKind = 'text' | 'jsonl' | 'json' | 'parquet' | 'tokens';

/** The kind a file's name says it is, or undefined for an extension that is not accepted. */
export function dataKindOf(file: string): DataKind | undefined {
  const ext = path.extname(file).toLowerCase();
  if (ext === '' || TEXT_EXTENSIONS.has(ext)) return 'text';
  if (ext === '.jsonl') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.parquet') return 'parquet';
  if (ext === TOKEN_STREAM_EXTENSION) return 'tokens';
  return undefined;
}

/** A file named on the command line whose extension is not accepted. */
export function unknownKindError(file: string): ShortGptError {
  const ext = path.extname(file).toLowerCase();
  const hint = HINTS[ext];
  return new ShortGptError(
    'ERR_DATA_FORMAT',
    `${file}: '${ext}' files are not read as data${hint ? `; ${hint}` : ''}. ${ACCEPTED_DATA_KINDS}`,
  );
}

/** How much of a file decides whether it is text: the first chunk a reader would see. */
export const SNIFF_BYTES = 64 * 1024;

/** Refuses bytes that are not text: a NUL byte in the first chunk means a binary file. `offset`: where `bytes` starts in the file. */
export function checkNotBinary(bytes: Uint8Array, file: string, offset = 0): void {
  const n = Math.min(bytes.length, SNIFF_BYTES - offset);
  for (let i = 0; i < n; i++) {
    if (bytes[i] === 0) {
      throw new ShortGptError(
        'ERR_DATA_BINARY',
        `${file} is binary, not text (a NUL byte at offset ${offset + i}); for a raw token stream name it .bin and pass --token-dtype uint16|uint32. ${ACCEPTED_DATA_KINDS}`,
      );
    }
  }
}
