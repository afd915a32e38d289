/**
 * Reading one tensor's bytes by offset, and decoding F32/F16/BF16 to float32, for TypeScript
 * consumers that need values (tests, reference implementations, small tensors). The engine
 * reads weights natively; nothing here loads a whole file.
 */
import { ShortGptError } from '../errors';
import { quoted } from '../util/printable';
import { openRegular } from '../util/readLimited';
import { bf16BitsToF32, f16BitsToF32 } from './halfFloat';
import type { TensorInfo } from './types';

/** A tensor's raw little-endian bytes, read from its file at its offset. */
export async function readTensorBytes(t: TensorInfo): Promise<Buffer> {
  const buf = Buffer.alloc(t.byteLength);
  const { handle } = await openRegular(t.file, 'safetensors file');
  try {
    let done = 0;
    while (done < t.byteLength) {
      const { bytesRead } = await handle.read(buf, done, t.byteLength - done, t.dataOffset + done);
      if (bytesRead === 0) throw new ShortGptError('ERR_SAFETENSORS_FILE_LENGTH', `${t.file}: tensor ${quoted(t.name)} is cut short (file changed since its header was read?)`);
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return buf;
}

/** Little-endian F32/F16/BF16 bytes -> float32 values. */
export function decodeToF32(t: Pick<TensorInfo, 'name' | 'dtype'>, bytes: Buffer): Float32Array {
  if (t.dtype === 'F32') {
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
    return out;
  }
  if (t.dtype === 'F16' || t.dtype === 'BF16') {
    const dec = t.dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = dec(bytes.readUInt16LE(i * 2));
    return out;
  }
  throw new ShortGptError('ERR_SAFETENSORS_DTYPE', `tensor ${quoted(t.name)} has dtype ${t.dtype}; only F32, F16 and BF16 can be decoded`);
}

/** A tensor decoded to f32 (F32, F16 or BF16; ERR_SAFETENSORS_DTYPE otherwise), in row-major order. */
export async function readTensorF32(t: TensorInfo): Promise<Float32Array> {
  return decodeToF32(t, await readTensorBytes(t));
}
