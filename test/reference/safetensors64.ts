/**
 * A deliberately minimal safetensors reader for the float64 reference: it shares no code with
 * lib/checkpoint on purpose, so a bug there cannot hide in both the engine and the reference.
 * It trusts its input (tests feed it generated or known-good checkpoints) and only decodes the
 * three dtypes we compute in, straight to float64.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Tensor64 {
  shape: number[];
  data: Float64Array;
  /** The dtype in the file (F32, F16, BF16): Gemma rounds its embedding scale to it. */
  dtype?: string;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** IEEE 754 binary16 -> number (exact: every f16 value is a double). */
function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // subnormal: m * 2^-14 / 2^10
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function decode(dtype: string, bytes: Buffer, count: number, where: string): Float64Array {
  const out = new Float64Array(count);
  if (dtype === 'F32') {
    for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  } else if (dtype === 'F16') {
    for (let i = 0; i < count; i++) out[i] = f16ToNumber(bytes.readUInt16LE(i * 2));
  } else if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32: shift it into place and reinterpret.
    const word = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < count; i++) {
      word.setUint32(0, bytes.readUInt16LE(i * 2) << 16 >>> 0, true);
      out[i] = word.getFloat32(0, true);
    }
  } else {
    throw new Error(`reference: ${where} has dtype ${dtype}; only F32/F16/BF16 are decoded`);
  }
  return out;
}

/** Absolute byte range [begin, end) of one tensor's data in a .safetensors file (to corrupt or zero it in tests). */
export function tensorByteRange(file: string, name: string): [number, number] {
  const buf = fs.readFileSync(file);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const entry = (JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, HeaderEntry>)[name];
  if (!entry) throw new Error(`reference: ${file} has no tensor ${name}`);
  return [8 + headerLength + entry.data_offsets[0], 8 + headerLength + entry.data_offsets[1]];
}

/** Every tensor of one .safetensors file, decoded to float64. */
export function readSafetensors64(file: string): Map<string, Tensor64> {
  const buf = fs.readFileSync(file);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, HeaderEntry | Record<string, string>>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, Tensor64>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: [begin, end] } = entry as HeaderEntry;
    const count = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, { shape, dtype, data: decode(dtype, buf.subarray(dataStart + begin, dataStart + end), count, `${file}: ${name}`) });
  }
  return tensors;
}

/** Every tensor of a checkpoint directory: model.safetensors, or the shards an index names. */
export function readCheckpointTensors64(dir: string): Map<string, Tensor64> {
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  const files = fs.existsSync(indexFile)
    ? [...new Set(Object.values((JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> }).weight_map))]
    : ['model.safetensors'];
  const all = new Map<string, Tensor64>();
  for (const f of files) for (const [name, t] of readSafetensors64(path.join(dir, f))) all.set(name, t);
  return all;
}
