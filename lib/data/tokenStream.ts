/**
 * Raw little-endian token streams (llama2.c's pretokenized `.bin` shards: uint16 ids, every
 * story starting with BOS = 1) -> documents. The stream is split before every BOS id, so each
 * document starts with BOS as the model saw it in training; without a BOS id the whole file is
 * one document.
 */
import { ShortGptError } from '../errors';
import type { CalibrationDocument, TokenDType } from './documents';

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
