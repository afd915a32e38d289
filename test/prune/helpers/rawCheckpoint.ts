/**
 * An independent reader for rewrite tests: parses safetensors headers with plain JSON.parse and
 * returns raw tensor bytes, sharing no code with lib/checkpoint or lib/prune, so a bug in the
 * rewrite's own reading cannot hide in the check.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RawTensor {
  file: string;
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

export interface RawFile {
  metadata: Record<string, string> | undefined;
  /** Names in data order. */
  order: string[];
  tensors: Map<string, RawTensor>;
}

export function readRawFile(file: string): RawFile {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const metadata = header.__metadata__ as unknown as Record<string, string> | undefined;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  entries.sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0]);
  const tensors = new Map<string, RawTensor>();
  for (const [name, e] of entries) {
    tensors.set(name, { file, dtype: e.dtype, shape: e.shape, bytes: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  }
  return { metadata, order: entries.map(([k]) => k), tensors };
}

/** Every tensor of a checkpoint directory, from model.safetensors or the shards in its index. */
export function readRawCheckpoint(dir: string): { files: Map<string, RawFile>; tensors: Map<string, RawTensor> } {
  const single = path.join(dir, 'model.safetensors');
  const names = fs.existsSync(single)
    ? ['model.safetensors']
    : [...new Set(Object.values((JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> }).weight_map))].sort();
  const files = new Map<string, RawFile>();
  const tensors = new Map<string, RawTensor>();
  for (const name of names) {
    const f = readRawFile(path.join(dir, name));
    files.set(name, f);
    for (const [k, t] of f.tensors) tensors.set(k, t);
  }
  return { files, tensors };
}

/** path -> sha256 and mtime of every file under `dir` (or of `dir` itself when a file), to prove a directory was not written. */
export function snapshotTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (fs.statSync(dir).isFile()) {
    const st = fs.statSync(dir);
    out.set(dir, `${createHash('sha256').update(fs.readFileSync(dir)).digest('hex')} ${st.mtimeMs} ${st.size}`);
    return out;
  }
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        out.set(`${p}/`, String(fs.statSync(p).mtimeMs));
        walk(p);
      } else {
        const st = fs.statSync(p);
        out.set(p, `${createHash('sha256').update(fs.readFileSync(p)).digest('hex')} ${st.mtimeMs} ${st.size}`);
      }
    }
  };
  walk(dir);
  out.set(`${dir}/`, String(fs.statSync(dir).mtimeMs));
  return out;
}

/** Entries of `parent` that look like our temporary or replaced-output directories. */
export function leftovers(parent: string): string[] {
  return fs.readdirSync(parent).filter((n) => /\.(tmp|old)-\d+-/.test(n));
}

export function tempRoot(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
