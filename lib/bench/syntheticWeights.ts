/**
 * Synthetic weights for the benchmark: ONE decoder layer (every tensor the architecture table
 * lists for layer 0) plus a small embedding table, written to one .safetensors file. The
 * benchmark points every layer at these same tensors, so the engine reads and packs a full
 * layer's bytes per layer exactly as it does for a real checkpoint, while the disk holds one
 * layer (M: 243 MB in f32) instead of the whole model.
 *
 * Values as scripts/torch_peer.py (the PyTorch peer) draws them: normal(0, 0.02), norm weights 1.
 * The bytes are produced in fixed-size chunks from a seeded generator and written as they come,
 * so memory stays at one chunk whatever the layer size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NativeTensorRef } from '../../binding';
import { EMBED_TOKENS, layerTensorSpecs } from '../checkpoint/architectures';
import { f32ToF16Bits } from '../checkpoint/halfFloat';
import { DTYPE_BYTES, readSafetensorsHeader } from '../checkpoint/safetensors';
import { encodeSafetensorsHeader, type HeaderEntry } from '../checkpoint/safetensorsHeader';
import type { ComputeDType, LayerTensorRole, ModelConfig } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { Prng } from './prng';

export const WEIGHT_STD = 0.02;
const CHUNK_ELEMENTS = 1 << 20;
/** Roles whose weights are RMSNorm scales: 1, as a freshly initialised model has them. */
const NORM_ROLES: ReadonlySet<LayerTensorRole> = new Set(['input_layernorm', 'post_attention_layernorm', 'q_norm', 'k_norm',
  'pre_feedforward_layernorm', 'post_feedforward_layernorm']);

export interface SyntheticLayerOptions {
  dtype: ComputeDType;
  seed: number;
  /** Rows of the embedding table written (the engine's vocabulary for the run). */
  embeddingRows: number;
  signal?: AbortSignal;
}

export interface SyntheticLayer {
  file: string;
  fileBytes: number;
  /** [embeddingRows, hidden] */
  embedding: NativeTensorRef;
  /** Layer 0's tensors by role, as forwardLayer takes them. */
  layer: Record<string, NativeTensorRef>;
  /** Bytes of the layer's tensors alone (what the engine reads per layer). */
  layerBytes: number;
  seconds: number;
}

interface Planned {
  name: string;
  role: LayerTensorRole | 'embedding';
  shape: number[];
  elements: number;
}

function abortIfNeeded(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ShortGptError('ERR_ABORTED', 'the benchmark was aborted while writing synthetic weights');
}

/** f32 values -> the bytes of `dtype` (little-endian), into `out`; returns the bytes used. */
function encodeChunk(values: Float32Array, dtype: ComputeDType, out: Buffer): number {
  if (dtype === 'F32') {
    const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    bytes.copy(out);
    return values.byteLength;
  }
  const u16 = new Uint16Array(out.buffer, out.byteOffset, values.length);
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) u16[i] = f32ToF16Bits(values[i]!);
  } else {
    // BF16: round to nearest even on the f32 bits (no NaN can occur in these values).
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const b = bits[i]!;
      u16[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return values.length * 2;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Writes the file into `dir` (which must exist) and reads its header back through the validator. */
export async function writeSyntheticLayer(dir: string, config: ModelConfig, options: SyntheticLayerOptions): Promise<SyntheticLayer> {
  const started = process.hrtime.bigint();
  const { dtype, embeddingRows, signal } = options;
  if (!Number.isSafeInteger(embeddingRows) || embeddingRows < 1) {
    throw new ShortGptError('ERR_INVALID_ARG', `embeddingRows must be a positive integer, got ${embeddingRows}`);
  }
  const planned: Planned[] = [
    { name: EMBED_TOKENS, role: 'embedding', shape: [embeddingRows, config.hiddenSize], elements: embeddingRows * config.hiddenSize },
    ...layerTensorSpecs(config, 0).map((s) => ({ name: s.name, role: s.role, shape: s.shape, elements: s.shape.reduce((a, b) => a * b, 1) })),
  ];
  const width = DTYPE_BYTES[dtype];
  const entries: HeaderEntry[] = planned.map((p) => ({ name: p.name, dtype, shape: p.shape, byteLength: p.elements * width }));
  const file = path.join(dir, 'synthetic-layer.safetensors');

  const prng = new Prng(options.seed);
  const values = new Float32Array(CHUNK_ELEMENTS);
  const encoded = Buffer.alloc(CHUNK_ELEMENTS * 4);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, encodeSafetensorsHeader(entries, { format: 'pt', generator: 'shortgpt-native bench (synthetic)' }));
    for (const p of planned) {
      for (let done = 0; done < p.elements; done += CHUNK_ELEMENTS) {
        abortIfNeeded(signal);
        const chunk = values.subarray(0, Math.min(CHUNK_ELEMENTS, p.elements - done));
        if (p.role !== 'embedding' && NORM_ROLES.has(p.role)) chunk.fill(1);
        else prng.fillNormal(chunk, WEIGHT_STD);
        const n = encodeChunk(chunk, dtype, encoded);
        fs.writeSync(fd, encoded, 0, n);
        // Let a Ctrl-C (an abort) through between chunks of a large layer.
        await yieldToEventLoop();
      }
    }
  } finally {
    fs.closeSync(fd);
  }

  const header = await readSafetensorsHeader(file);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const ref = (p: Planned): NativeTensorRef => {
    const t = byName.get(p.name);
    if (!t) throw new ShortGptError('ERR_INTERNAL', `${file}: the synthetic tensor '${p.name}' is missing after writing`);
    return { name: t.name, file: t.file, offset: t.dataOffset, dtype: t.dtype, shape: t.shape };
  };
  const layer: Record<string, NativeTensorRef> = {};
  let layerBytes = 0;
  for (const p of planned.slice(1)) {
    layer[p.role] = ref(p);
    layerBytes += p.elements * width;
  }
  return {
    file,
    fileBytes: header.fileSize,
    embedding: ref(planned[0]!),
    layer,
    layerBytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}
