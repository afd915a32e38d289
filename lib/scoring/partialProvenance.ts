/**
 * What must be the same for partial scores to add up: the model (config.json's bytes and every
 * safetensors header's bytes, hashed: two copies of a checkpoint at different paths match, a
 * different or edited one does not), the data (sources as given, the tokenizer's bytes, the
 * windowing options, and a hash of every window's token ids, which pins the data exactly), the
 * engine mode whose arithmetic the sums carry (device, precision), and the shard count.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Checkpoint } from '../checkpoint/types';
import type { CalibrationSummary, TokenWindow } from '../data/windows';
import type { EngineOptions } from '../engine/engineOptions';
import type { CalibrationOptions } from '../prune/calibration';

export interface ModelIdentity {
  architecture: string;
  numHiddenLayers: number;
  hiddenSize: number;
  /** sha256 of config.json's bytes. */
  configSha256: string;
  /** sha256 over every weight file's name and header hash, in name order. */
  tensorHeadersSha256: string;
  files: Array<{ name: string; headerSha256: string }>;
}

export interface DataIdentity {
  /** --calib sources as given on the command line. */
  sources: string[];
  /** sha256 of tokenizer.json (null: the model folder has none). */
  tokenizerSha256: string | null;
  /** The options that decide the windows. */
  windowing: { seqLen: number; stride: number; samples: number | null; seed: number | null; maxCalibTokens: number | null; textField: string | null; tokenDType: string | null };
  /** Every window (all shards'), and the tokens in them. */
  windows: number;
  tokens: number;
  /** sha256 over every window's length and token ids, in window order. */
  windowsSha256: string;
  /** The calibration summary of the whole data (for reports made from merged scores). */
  summary: CalibrationSummary;
}

/** What partial scores must share to be merged, recorded in every partial and in SCORES.json. */
export interface ScoringProvenance {
  model: ModelIdentity;
  data: DataIdentity;
  engine: { device: 'cpu' | 'cuda'; precision: 'f32' | 'bf16' };
  shards: number;
}

const sha256 = (b: Buffer | Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Reads exactly `length` bytes at `offset` (a header: small, bounded by the checkpoint's validation). */
function readRange(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}

/** The model's identity from its opened checkpoint: hashes of config.json and of each safetensors header. */
export function modelIdentity(ckpt: Checkpoint): ModelIdentity {
  const configSha256 = sha256(fs.readFileSync(path.join(ckpt.dir, 'config.json')));
  const files = ckpt.files
    .map((f) => ({ name: path.basename(f.file), headerSha256: sha256(readRange(f.file, 0, 8 + f.headerLength)) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const combined = createHash('sha256');
  for (const f of files) combined.update(`${f.name}\0${f.headerSha256}\n`);
  return {
    architecture: ckpt.config.architecture,
    numHiddenLayers: ckpt.config.numHiddenLayers,
    hiddenSize: ckpt.config.hiddenSize,
    configSha256,
    tensorHeadersSha256: combined.digest('hex'),
    files,
  };
}

/** sha256 over the windows' lengths and ids: equal only for the same windows in the same order. */
export function windowsSha256(windows: readonly TokenWindow[]): string {
  const h = createHash('sha256');
  const len = Buffer.alloc(4);
  for (const w of windows) {
    len.writeUInt32LE(w.ids.length, 0);
    h.update(len);
    const ids = Int32Array.from(w.ids as ArrayLike<number>);
    h.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  }
  return h.digest('hex');
}

/** The calibration data's identity: sources, tokenizer hash, windowing options, and a hash of every window. */
export function dataIdentity(ckpt: Checkpoint, sources: readonly string[], windows: readonly TokenWindow[], summary: CalibrationSummary, opts: CalibrationOptions): DataIdentity {
  const tokenizerFile = path.join(ckpt.dir, 'tokenizer.json');
  return {
    sources: [...sources],
    tokenizerSha256: fs.existsSync(tokenizerFile) ? sha256(fs.readFileSync(tokenizerFile)) : null,
    windowing: {
      seqLen: summary.seqLen,
      stride: summary.stride,
      samples: summary.samples,
      seed: summary.seed,
      maxCalibTokens: opts.maxCalibTokens ?? null,
      textField: opts.textField ?? null,
      tokenDType: opts.tokenDType ?? null,
    },
    windows: windows.length,
    tokens: windows.reduce((n, w) => n + w.ids.length, 0),
    windowsSha256: windowsSha256(windows),
    summary,
  };
}

/** Everything partial scores must share to be merged: model and data identity, engine mode, shard count. */
export function scoringProvenance(ckpt: Checkpoint, data: DataIdentity, engine: EngineOptions, shards: number): ScoringProvenance {
  return {
    model: modelIdentity(ckpt),
    data,
    engine: { device: engine.device ?? 'cpu', precision: engine.precision ?? 'f32' },
    shards,
  };
}

/**
 * The first difference between two provenances, in words ("model: config.json differs
 * (sha256 ab12... vs cd34...)"), or undefined when they match. `what` names the two sides.
 */
export function provenanceMismatch(a: ScoringProvenance, b: ScoringProvenance, names: [string, string]): string | undefined {
  const short = (h: string | null): string => (h === null ? 'none' : `${h.slice(0, 12)}…`);
  const [x, y] = names;
  if (a.model.configSha256 !== b.model.configSha256) return `different model: config.json sha256 ${short(a.model.configSha256)} in ${x}, ${short(b.model.configSha256)} in ${y}`;
  if (a.model.tensorHeadersSha256 !== b.model.tensorHeadersSha256) return `different model: safetensors headers differ (${short(a.model.tensorHeadersSha256)} in ${x}, ${short(b.model.tensorHeadersSha256)} in ${y})`;
  if (JSON.stringify(a.data.sources) !== JSON.stringify(b.data.sources)) return `different calibration sources: ${JSON.stringify(a.data.sources)} in ${x}, ${JSON.stringify(b.data.sources)} in ${y}`;
  if (a.data.tokenizerSha256 !== b.data.tokenizerSha256) return `different tokenizer: tokenizer.json sha256 ${short(a.data.tokenizerSha256)} in ${x}, ${short(b.data.tokenizerSha256)} in ${y}`;
  for (const k of Object.keys(a.data.windowing) as Array<keyof DataIdentity['windowing']>) {
    if (a.data.windowing[k] !== b.data.windowing[k]) return `different windowing option ${k}: ${String(a.data.windowing[k])} in ${x}, ${String(b.data.windowing[k])} in ${y}`;
  }
  if (a.data.windows !== b.data.windows || a.data.windowsSha256 !== b.data.windowsSha256) return `different calibration data: ${a.data.windows} windows (sha256 ${short(a.data.windowsSha256)}) in ${x}, ${b.data.windows} windows (sha256 ${short(b.data.windowsSha256)}) in ${y}`;
  if (a.engine.device !== b.engine.device || a.engine.precision !== b.engine.precision) return `different engine: ${a.engine.device}/${a.engine.precision} in ${x}, ${b.engine.device}/${b.engine.precision} in ${y} (their sums round differently)`;
  if (a.shards !== b.shards) return `different shard count N: ${a.shards} in ${x}, ${b.shards} in ${y}`;
  return undefined;
}
