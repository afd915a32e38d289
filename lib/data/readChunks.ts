/**
 * Calibration bytes in chunks, from a regular file or from stdin, and strict UTF-8 text in
 * chunks. Nothing here reads a whole file: the consumer stops when it has enough tokens
 * (--max-calib-tokens) and the file is closed (or stdin released) on the way out.
 */
import * as fs from 'node:fs';
import { ShortGptError } from '../errors';
import { openRegular } from '../util/readLimited';
import { ACCEPTED_DATA_KINDS, checkNotBinary, SNIFF_BYTES } from './dataKinds';

/** Bytes per read: large enough to be cheap, small enough that stopping early wastes little. */
export const READ_CHUNK_BYTES = 1024 * 1024;

/** A calibration file that cannot be opened or read: ERR_DATA_MISSING / ERR_DATA_UNREADABLE. */
export function unreadable(file: string, e: unknown): ShortGptError {
  if (e instanceof ShortGptError) return e;
  const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
  return new ShortGptError(missing ? 'ERR_DATA_MISSING' : 'ERR_DATA_UNREADABLE', `calibration data ${file} ${missing ? 'does not exist' : `cannot be read: ${(e as Error).message}`}`, { cause: e });
}

/**
 * A pipe the shell opened for us: process substitution (`--calib <(zcat x.gz)`) passes
 * /dev/fd/N, a pipe whose writer is already running, so reading it cannot hang the way a named
 * FIFO with no writer does. It is read like stdin, bounded by the token limit.
 */
function isProcessSubstitution(file: string): boolean {
  if (!/^\/(dev|proc\/self)\/fd\/\d+$/.test(file)) return false;
  try {
    return fs.statSync(file).isFIFO();
  } catch {
    return false;
  }
}

/** A regular file's bytes in chunks (devices, FIFOs and directories are refused before opening). */
export async function* fileChunks(file: string, chunkBytes = READ_CHUNK_BYTES): AsyncGenerator<Uint8Array> {
  if (isProcessSubstitution(file)) {
    yield* streamChunks(fs.createReadStream(file, { highWaterMark: chunkBytes }));
    return;
  }
  let opened;
  try {
    opened = await openRegular(file, 'calibration data');
  } catch (e) {
    throw unreadable(file, e);
  }
  const { handle } = opened;
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(chunkBytes);
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, chunkBytes, null));
      } catch (e) {
        throw unreadable(file, e);
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    await handle.close();
  }
}

/** A stream's bytes in chunks (stdin: `--calib -`). Breaking out of the loop releases the stream. */
export async function* streamChunks(stream: NodeJS.ReadableStream): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
}

/**
 * Bytes -> strict UTF-8 text chunks: the first SNIFF_BYTES are checked for NUL (a binary file, or
 * /dev/urandom piped in), a leading BOM is dropped, and invalid UTF-8 is an error naming `file`.
 */
export async function* utf8Chunks(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, file: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let seen = 0;
  let first = true;
  const decode = (b?: Uint8Array): string => {
    try {
      return b ? decoder.decode(b, { stream: true }) : decoder.decode();
    } catch (e) {
      throw new ShortGptError('ERR_DATA_CORRUPT', `${file} is not UTF-8 text (save it as UTF-8); for a raw token stream pass --token-dtype uint16|uint32 and name it .bin. ${ACCEPTED_DATA_KINDS}`, { cause: e });
    }
  };
  for await (const b of bytes) {
    if (seen < SNIFF_BYTES) checkNotBinary(b.subarray(0, SNIFF_BYTES - seen), file, seen);
    seen += b.length;
    let text = decode(b);
    if (first && text !== '') {
      text = text.replace(/^\uFEFF/, '');
      first = false;
    }
    if (text !== '') yield text;
  }
  const tail = decode();
  if (tail !== '') yield tail;
}
