/**
 * Raw little-endian token streams (llama2.c's pretokenized `.bin` shards: uint16 ids, every
 * story starting with BOS = 1) -> documents. The stream is split before every BOS id, so each
 * document starts with BOS as the model saw it in training; without a BOS id the whole file is
 * one document.
 */
import { ShortGptError } from '../errors';
import type { CalibrationDocument, TokenDType } from './documents';

/** A piece of a token stream: `first` starts a document (at a BOS id, or the file's start). */
export interface TokenUnit {
  kind: 'tokens';
  ids: number[];
  origin: string;
  first: boolean;
}

/**
 * A token stream read in chunks -> documents in pieces (one piece per chunk at most per
 * document), so a reader that has enough tokens stops without reading the rest of the file.
 */
export async function* tokenStreamUnits(chunks: AsyncIterable<Uint8Array>, file: string, dtype: TokenDType, bosTokenId: number | null | undefined): AsyncGenerator<TokenUnit> {
  const width = dtype === 'uint16' ? 2 : 4;
  let carry = new Uint8Array(0);
  let position = 0;
  let docStart = 0;
  let started = false;
  for await (const chunk of chunks) {
    let bytes = chunk;
    if (carry.length > 0) {
      bytes = new Uint8Array(carry.length + chunk.length);
      bytes.set(carry);
      bytes.set(chunk, carry.length);
    }
    const whole = bytes.length - (bytes.length % width);
    carry = bytes.slice(whole);
    const view = new DataView(bytes.buffer, bytes.byteOffset, whole);
    let ids: number[] = [];
    let first = !started;
    for (let i = 0; i < whole / width; i++, position++) {
      const id = width === 2 ? view.getUint16(i * 2, true) : view.getUint32(i * 4, true);
      if (id === bosTokenId && position > docStart) {
        if (ids.length > 0) yield { kind: 'tokens', ids, origin: `${file}@token ${docStart}`, first };
        ids = [];
        first = true;
        docStart = position;
      }
      ids.push(id);
      started = true;
    }
    if (ids.length > 0) yield { kind: 'tokens', ids, origin: `${file}@token ${docStart}`, first };
  }
  if (carry.length > 0) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: ${position * width + carry.length} bytes is not a whole number of ${dtype} tokens (${width} bytes each); is --token-dtype right?`);
  }
}

export function parseTokenStream(bytes: Uint8Array, file: string, dtype: TokenDType, bosTokenId: number | null | undefined): CalibrationDocument[] {
  const width = dtype === 'uint16' ? 2 : 4;
  if (bytes.byteLength % width !== 0) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: ${bytes.byteLength} bytes is not a whole number of ${dtype} tokens (${width} bytes each); is --token-dtype right?`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / width;
  const docs: CalibrationDocument[] = [];
  let ids: number[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const id = width === 2 ? view.getUint16(i * 2, true) : view.getUint32(i * 4, true);
    if (id === bosTokenId && ids.length > 0) {
      docs.push({ kind: 'tokens', ids, origin: `${file}@token ${start}` });
      ids = [];
      start = i;
    }
    ids.push(id);
  }
  if (ids.length > 0) docs.push({ kind: 'tokens', ids, origin: `${file}@token ${start}` });
  return docs;
}
