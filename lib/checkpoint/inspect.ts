/** What `shortgpt-native inspect` reports about a checkpoint: shapes, dtypes, parameter counts. */
import * as path from 'node:path';
import { globalTensorSpecs, layerIndexOf } from './architectures';
import { openCheckpoint } from './checkpoint';
import type { Checkpoint, DType, RopeScaling, TensorInfo } from './types';

/** Stable JSON field names: scripts depend on them. */
export interface InspectReport {
  dir: string;
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  slidingWindow: number | null;
  ropeScaling: RopeScaling;
  /** Tensor count per dtype. */
  dtypes: Partial<Record<DType, number>>;
  /** Parameters of each decoder layer, from the tensors actually present (index = layer). */
  parametersPerLayer: number[];
  /** Parameters outside the decoder layers (embeddings, final norm, lm_head). */
  globalParameters: number;
  totalParameters: number;
  tensorCount: number;
  /** Size of the safetensors files (headers included). */
  bytesOnDisk: number;
  /** Safetensors file names, relative to dir; more than one when sharded. */
  files: string[];
  sharded: boolean;
  warnings: string[];
}

export function elementCount(t: TensorInfo): number {
  return t.shape.reduce((a, d) => a * d, 1);
}

export function inspectCheckpointInfo(ckpt: Checkpoint): InspectReport {
  const c = ckpt.config;
  const dtypes: Partial<Record<DType, number>> = {};
  const perLayer = new Array<number>(c.numHiddenLayers).fill(0);
  const globals = new Set(globalTensorSpecs(c).map((s) => s.name));
  let total = 0;
  let globalParameters = 0;
  for (const t of ckpt.tensors.values()) {
    const n = elementCount(t);
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    total += n;
    const layer = layerIndexOf(t.name);
    if (layer !== null && layer < c.numHiddenLayers) perLayer[layer]! += n;
    else if (globals.has(t.name)) globalParameters += n;
  }
  return {
    dir: ckpt.dir,
    architecture: c.architecture,
    modelType: c.modelType,
    layers: c.numHiddenLayers,
    hiddenSize: c.hiddenSize,
    numAttentionHeads: c.numAttentionHeads,
    numKeyValueHeads: c.numKeyValueHeads,
    headDim: c.headDim,
    intermediateSize: c.intermediateSize,
    vocabSize: c.vocabSize,
    tieWordEmbeddings: c.tieWordEmbeddings,
    slidingWindow: c.slidingWindow,
    ropeScaling: c.ropeScaling,
    dtypes,
    parametersPerLayer: perLayer,
    globalParameters,
    totalParameters: total,
    tensorCount: ckpt.tensors.size,
    bytesOnDisk: ckpt.files.reduce((s, f) => s + f.fileSize, 0),
    files: ckpt.files.map((f) => path.relative(ckpt.dir, f.file)),
    sharded: ckpt.index !== undefined,
    warnings: ckpt.warnings,
  };
}

export async function inspectCheckpoint(dir: string): Promise<InspectReport> {
  return inspectCheckpointInfo(await openCheckpoint(dir));
}

function group(n: number): string {
  return n.toLocaleString('en-US');
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]} (${group(n)} bytes)`;
}

/** The human-readable form of the report. */
export function formatInspectReport(r: InspectReport): string {
  const distinct = [...new Set(r.parametersPerLayer)];
  const perLayer = distinct.length <= 1 ? group(distinct[0] ?? 0) : r.parametersPerLayer.map((p, i) => `${i}:${group(p)}`).join(' ');
  const rope = r.ropeScaling.type === 'none' ? 'none' : `${r.ropeScaling.type} x${r.ropeScaling.factor}`;
  const lines = [
    `checkpoint     ${r.dir}`,
    `architecture   ${r.architecture} (model_type ${r.modelType || '?'})`,
    `layers         ${r.layers}`,
    `hidden size    ${r.hiddenSize}`,
    `heads          ${r.numAttentionHeads} attention, ${r.numKeyValueHeads} key/value, head_dim ${r.headDim}`,
    `intermediate   ${r.intermediateSize}`,
    `vocab          ${r.vocabSize}${r.tieWordEmbeddings ? ' (lm_head tied to embeddings)' : ''}`,
    `attention      ${r.slidingWindow === null ? 'full causal' : `sliding window ${r.slidingWindow}`}; rope scaling ${rope}`,
    `dtypes         ${Object.entries(r.dtypes).map(([d, n]) => `${d} x${n}`).join(', ')}`,
    `parameters     ${group(r.totalParameters)} total; ${perLayer} per layer; ${group(r.globalParameters)} outside layers`,
    `tensors        ${r.tensorCount}`,
    `on disk        ${bytes(r.bytesOnDisk)} in ${r.files.length} file${r.files.length === 1 ? '' : 's'}${r.sharded ? ' (sharded)' : ''}`,
  ];
  if (r.warnings.length > 0) lines.push(`warnings       ${r.warnings.length}`, ...r.warnings.map((w) => `  - ${w}`));
  return `${lines.join('\n')}\n`;
}
