/**
 * Reading and validating a .safetensors header. Only the 8-byte length and the JSON header are
 * read (at offsets, never the whole file); every rule of the format is checked before any of it
 * is trusted (huggingface/safetensors `safetensors/src/tensor.rs`; ../shared/STYLE.md "Formats").
 * Each rule has its own stable error code.
 */
import * as fs from 'node:fs/promises';
import { ShortGptError } from '../errors';
import { quoted } from '../util/printable';
import { openRegular } from '../util/readLimited';
import { findDuplicateKey, JsonTooDeepError } from './jsonDuplicates';
import type { ComputeDType, DType, SafetensorsFile, TensorInfo } from './types';

/** Bytes per element of every safetensors dtype. */
export const DTYPE_BYTES: Record<DType, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The dtypes the engine computes in. */
export function isComputeDType(d: string): d is ComputeDType {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

export function isDType(d: unknown): d is DType {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, d);
}

/** Same limit as huggingface/safetensors (MAX_HEADER_SIZE): 100 MB of JSON. */
export const MAX_HEADER_LENGTH = 100_000_000;

const ENTRY_KEYS = ['data_offsets', 'dtype', 'shape'];

function fail(code: string, file: string, message: string): never {
  throw new ShortGptError(code, `${file}: ${message}`);
}

function isNonNegativeSafeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

async function readAt(handle: fs.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

/** Reads and validates the header of `file`; the tensor data is not read. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsFile> {
  let handle: fs.FileHandle;
  try {
    // Checked before the open: opening a FIFO with no writer would block forever.
    ({ handle } = await openRegular(file, 'safetensors file'));
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail('ERR_FILE_NOT_FOUND', file, 'file not found');
    fail('ERR_SAFETENSORS_IO', file, `cannot open: ${(e as Error).message}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) fail('ERR_SAFETENSORS_IO', file, 'not a regular file');
    const fileSize = stat.size;
    if (fileSize < 8) fail('ERR_SAFETENSORS_TOO_SMALL', file, `${fileSize} bytes; a safetensors file has at least the 8-byte header length`);
    const prefix = await readAt(handle, 0, 8);
    // u64 little-endian; compared as BigInt so a huge value cannot round into range.
    const n = prefix.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_LENGTH)) fail('ERR_SAFETENSORS_HEADER_LENGTH', file, `header length ${n} exceeds the ${MAX_HEADER_LENGTH}-byte limit`);
    if (8n + n > BigInt(fileSize)) fail('ERR_SAFETENSORS_HEADER_LENGTH', file, `header length ${n} runs past the end of the ${fileSize}-byte file`);
    const headerLength = Number(n);
    const headerBytes = await readAt(handle, 8, headerLength);
    if (headerBytes.length !== headerLength) fail('ERR_SAFETENSORS_IO', file, `short read of the ${headerLength}-byte header`);
    return parseHeader(file, fileSize, headerBytes);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    fail('ERR_SAFETENSORS_IO', file, `cannot read: ${(e as Error).message}`);
  } finally {
    await handle.close();
  }
}

/** Validates header bytes (without the 8-byte prefix) of a file of `fileSize` bytes. */
export function parseHeader(file: string, fileSize: number, headerBytes: Buffer): SafetensorsFile {
  const headerLength = headerBytes.length;
  const dataStart = 8 + headerLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail('ERR_SAFETENSORS_HEADER_JSON', file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('ERR_SAFETENSORS_HEADER_JSON', file, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail('ERR_SAFETENSORS_HEADER_JSON', file, 'header is not a JSON object');
  }
  let dup;
  try {
    dup = findDuplicateKey(text);
  } catch (e) {
    if (e instanceof JsonTooDeepError) fail('ERR_SAFETENSORS_HEADER_JSON', file, `header ${e.message}`);
    throw e;
  }
  if (dup) {
    const where = dup.path.length === 0 ? 'at the top level' : `inside ${quoted(dup.path.join('.'))}`;
    fail('ERR_SAFETENSORS_DUPLICATE_KEY', file, `duplicate key ${quoted(dup.key)} ${where} of the header`);
  }

  const obj = json as Record<string, unknown>;
  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  const begins = new Map<string, number>();
  for (const [name, entry] of Object.entries(obj)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(file, entry);
      continue;
    }
    const t = `tensor ${quoted(name)}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail('ERR_SAFETENSORS_ENTRY', file, `${t}: entry is not an object {dtype, shape, data_offsets}`);
    }
    const e = entry as Record<string, unknown>;
    const keys = Object.keys(e).sort();
    if (keys.length !== ENTRY_KEYS.length || keys.some((k, i) => k !== ENTRY_KEYS[i])) {
      fail('ERR_SAFETENSORS_ENTRY', file, `${t}: entry has keys {${keys.join(', ')}}; expected exactly {dtype, shape, data_offsets}`);
    }
    if (!isDType(e.dtype)) {
      fail('ERR_SAFETENSORS_DTYPE', file, `${t}: unknown dtype ${JSON.stringify(e.dtype)}; known: ${Object.keys(DTYPE_BYTES).join(', ')}`);
    }
    const dtype = e.dtype;
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegativeSafeInteger)) {
      fail('ERR_SAFETENSORS_SHAPE', file, `${t}: shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const shape = e.shape as number[];
    // Product as BigInt: a shape whose element or byte count leaves the safe-integer range is
    // corrupt for any real checkpoint and would make offsets imprecise.
    const elements = shape.reduce((acc, d) => acc * BigInt(d), 1n);
    const bytes = elements * BigInt(DTYPE_BYTES[dtype]);
    if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail('ERR_SAFETENSORS_SHAPE', file, `${t}: shape [${shape.join(', ')}] has too many elements (${elements})`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegativeSafeInteger) || offs[0] > offs[1]) {
      fail('ERR_SAFETENSORS_OFFSET', file, `${t}: data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offs as [number, number];
    if (BigInt(end - begin) !== bytes) {
      fail('ERR_SAFETENSORS_BYTE_LENGTH', file, `${t}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${bytes}`);
    }
    begins.set(name, begin);
    tensors.push({ name, dtype, shape, file, dataOffset: dataStart + begin, byteLength: end - begin });
  }

  // Sorted by begin (then end, so zero-length tensors sit before a tensor at the same offset),
  // the tensors must tile [0, last end) exactly: no gap, no overlap.
  tensors.sort((a, b) => a.dataOffset - b.dataOffset || a.byteLength - b.byteLength || (a.name < b.name ? -1 : 1));
  let cursor = 0;
  for (const t of tensors) {
    const begin = begins.get(t.name)!;
    if (begin !== cursor) {
      const what = begin > cursor ? `a gap: bytes [${cursor}, ${begin}) belong to no tensor` : `an overlap with the tensor before it, which ends at ${cursor}`;
      fail('ERR_SAFETENSORS_OFFSET', file, `tensor ${quoted(t.name)}: data_offsets begin at ${begin}, leaving ${what}`);
    }
    cursor = begin + t.byteLength;
  }
  if (dataStart + cursor !== fileSize) {
    fail('ERR_SAFETENSORS_FILE_LENGTH', file, `file is ${fileSize} bytes but the header (8 + ${headerLength}) and tensor data (${cursor}) add up to ${dataStart + cursor}`);
  }
  return { file, fileSize, headerLength, dataStart, metadata, tensors };
}

function checkMetadata(file: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    fail('ERR_SAFETENSORS_METADATA', file, '__metadata__ is not an object of strings');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== 'string') fail('ERR_SAFETENSORS_METADATA', file, `__metadata__ ${quoted(k)} is ${JSON.stringify(v)}; metadata values must be strings`);
    // defineProperty: a key named '__proto__' must stay an ordinary key.
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
