/**
 * Encoding a safetensors header: the 8-byte little-endian length followed by the JSON header,
 * space-padded so that the data section starts at a multiple of 8 (as huggingface/safetensors
 * writes it, keeping every tensor 8-byte aligned when the data offsets are).
 */
import { ShortGptError } from '../errors';
import type { DType } from './types';

export interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/**
 * `entries` in data order; offsets are assigned contiguously from 0. Byte lengths are taken as
 * given (not checked against the shape) so tests can write deliberately inconsistent files;
 * writers of real checkpoints read the result back through readSafetensorsHeader.
 */
export function encodeSafetensorsHeader(entries: HeaderEntry[], metadata?: Record<string, string>): Buffer {
  // Null prototype: a tensor named '__proto__' must become an ordinary key.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new ShortGptError('ERR_SAFETENSORS_METADATA', `__metadata__ '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    if (e.name === '__metadata__' || Object.prototype.hasOwnProperty.call(header, e.name)) {
      throw new ShortGptError('ERR_SAFETENSORS_DUPLICATE_KEY', `cannot write tensor '${e.name}': the name is used twice or reserved`);
    }
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.byteLength] };
    offset += e.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}
