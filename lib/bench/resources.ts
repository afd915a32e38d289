/**
 * What a benchmark shape needs before anything is written: the synthetic layer file on disk and
 * the engine's memory (activations plus one layer). A `--config` or `--hidden` value is only a
 * number on the command line; without this check `--hidden 1048576 --intermediate 1048576`
 * fills the temporary directory with a multi-terabyte file or runs the machine out of memory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { layerTensorSpecs } from '../checkpoint/architectures';
import { DTYPE_BYTES } from '../checkpoint/safetensors';
import type { ComputeDType, ModelConfig } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { formatBytes } from '../util/format';

/** Room for the safetensors header and the file system's own blocks. */
const FILE_SLACK_BYTES = 1 << 20;

export interface BenchFootprint {
  /** The synthetic file: one layer plus `embeddingRows` rows of the embedding table. */
  fileBytes: number;
  /**
   * A lower bound on the engine's memory for the run (cpu_backend.cc's buffers): the residual
   * stream for every token, the per-batch work buffers (normed input, q/k/v, attention output,
   * MLP gate/up and activation, delta), and the layer both as read and packed to f32.
   */
  memoryBytes: number;
}

export function benchFootprint(c: ModelConfig, dtype: ComputeDType, embeddingRows: number, tokens: number): BenchFootprint {
  const layerElements = layerTensorSpecs(c, 0).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const width = DTYPE_BYTES[dtype];
  const H = c.hiddenSize;
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  const I = c.intermediateSize;
  const perToken = H + (3 * H + 2 * qd + 2 * kvd + 3 * I);
  return {
    fileBytes: (layerElements + embeddingRows * H) * width + FILE_SLACK_BYTES,
    memoryBytes: 4 * tokens * perToken + layerElements * (4 + width) + embeddingRows * H * width,
  };
}

/** Memory this process may use: MemAvailable, or a smaller cgroup limit when one is set. */
export function availableMemoryBytes(): number {
  let available = os.freemem();
  const limit = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  // No limit reads as 0 or as 2^64 (an unlimited cgroup); only a real limit below RAM counts.
  if (limit && limit > 0 && limit < os.totalmem()) available = Math.min(available, limit);
  return available;
}

/** Bytes free for an unprivileged writer on the file system holding `dir`. */
export function freeDiskBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Refuses (ERR_BENCH_TOO_LARGE) a shape whose synthetic file does not fit the free space of
 * `tempParent` or whose run does not fit the available memory, with both numbers in the message.
 */
export function checkBenchResources(shapeName: string, footprint: BenchFootprint, tempParent: string, resources = { disk: freeDiskBytes(tempParent), memory: availableMemoryBytes() }): void {
  const { fileBytes, memoryBytes } = footprint;
  if (!Number.isFinite(fileBytes) || fileBytes > resources.disk) {
    throw new ShortGptError('ERR_BENCH_TOO_LARGE', `bench: shape ${shapeName} needs a ${formatBytes(fileBytes)} synthetic layer file, but ${tempParent} has ${formatBytes(resources.disk)} free; `
      + 'choose a smaller shape or point TMPDIR at a larger disk');
  }
  if (!Number.isFinite(memoryBytes) || memoryBytes > resources.memory) {
    throw new ShortGptError('ERR_BENCH_TOO_LARGE', `bench: shape ${shapeName} needs at least ${formatBytes(memoryBytes)} of memory (activations plus one layer), but ${formatBytes(resources.memory)} is available; `
      + 'choose a smaller shape, fewer --sequences or a shorter --seq-len');
  }
}
