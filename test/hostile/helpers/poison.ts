/**
 * Copies of the bundled stories260k checkpoint with NaN/Inf (or huge finite) values written into
 * one tensor's bytes, for tests of the engine's non-finite checks. Only the copy's
 * model.safetensors is edited, in place, at offsets read from its own header.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TensorLocation {
  dtype: string;
  shape: number[];
  /** Absolute byte offset of element 0 in the file. */
  start: number;
}

/** Where `name`'s bytes lie in a single-file safetensors checkpoint. */
export function locateTensor(file: string, name: string): TensorLocation {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header[name];
  if (!t) throw new Error(`${file} has no tensor ${name}`);
  return { dtype: t.dtype, shape: t.shape, start: 8 + headerLen + t.data_offsets[0] };
}

/** One edit: elements (flat indices, or 'all') of tensor `tensor` set to `value`. */
export interface Poison {
  tensor: string;
  elements: number[] | 'all';
  value: number;
}

/** Copies every file of `srcDir` into `dstDir` and applies the edits to its model.safetensors (F32 only). */
export function poisonedCopy(srcDir: string, dstDir: string, edits: readonly Poison[]): string {
  fs.mkdirSync(dstDir, { recursive: true });
  for (const f of fs.readdirSync(srcDir)) fs.copyFileSync(path.join(srcDir, f), path.join(dstDir, f));
  const file = path.join(dstDir, 'model.safetensors');
  const fd = fs.openSync(file, 'r+');
  try {
    for (const e of edits) {
      const loc = locateTensor(file, e.tensor);
      if (loc.dtype !== 'F32') throw new Error(`poisonedCopy writes F32 values only; ${e.tensor} is ${loc.dtype}`);
      const count = loc.shape.reduce((a, b) => a * b, 1);
      const idx = e.elements === 'all' ? Array.from({ length: count }, (_, i) => i) : e.elements;
      const one = Buffer.alloc(4);
      one.writeFloatLE(e.value, 0);
      for (const i of idx) {
        if (i < 0 || i >= count) throw new Error(`element ${i} is outside ${e.tensor} (${count} elements)`);
        fs.writeSync(fd, one, 0, 4, loc.start + 4 * i);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return dstDir;
}
