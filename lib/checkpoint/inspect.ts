/** What `shortgpt-native inspect` reports about a checkpoint: shapes, dtypes, parameter counts. */
import * as path from 'node:path';
import { globalTensorSpecs, layerIndexOf } from './architectures';
import { openCheckpoint } from './checkpoint';
import type { Checkpoint, DType, ModelConfig, RopeScaling, TensorInfo } from './types';
import { formatBytes, formatCount } from '../util/format';
import { printable } from '../util/printable';
import type { ShortGptError } from '../errors';

/**
 * What {@link inspectCheckpoint} finds in a checkpoint (`inspect --json` prints it). Stable JSON
 * field names: scripts depend on them. Config values are config.json's, in transformers' names.
 */
export interface InspectReport {
  /** The checkpoint directory (absolute). */
  dir: string;
  /** config.json `architectures[0]`, e.g. LlamaForCausalLM. */
  architecture: string;
  /** config.json `model_type`, e.g. llama. */
  modelType: string;
  /** Decoder layers (num_hidden_layers). */
  layers: number;
  /** hidden_size. */
  hiddenSize: number;
  /** num_attention_heads. */
  numAttentionHeads: number;
  /** num_key_value_heads (= numAttentionHeads without grouped-query attention). */
  numKeyValueHeads: number;
  /** head_dim (hidden_size / num_attention_heads unless config.json says otherwise). */
  headDim: number;
  /** intermediate_size (the MLP width). */
  intermediateSize: number;
  /** vocab_size. */
  vocabSize: number;
  /** Whether lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Sliding-window attention width in tokens; null for full attention. */
  slidingWindow: number | null;
  /** rope_scaling as the engine applies it. */
  ropeScaling: RopeScaling;
  /** Granite only: embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling. */
  multipliers?: { embedding: number; residual: number; attention: number; logitsScaling: number };
  /** SmolLM3 only (when any): the layers that apply no rotary embedding. */
  noRopeLayers?: number[];
  /** Phi-3 partial_rotary_factor < 1 only: the dimensions of each head that RoPE rotates. */
  rotaryDim?: number;
  /** Gemma 2/3 only: the embedding and attention scales, soft-capping, full-attention layers, local RoPE base. */
  gemma?: ModelConfig['gemma'];
  /**
   * Mixtral / Qwen3-MoE only: experts per MoE layer, experts each token runs, the layers with a
   * dense MLP instead, and the parameters one token uses (totalParameters less the experts it
   * does not run; the embeddings counted whole, as in totalParameters).
   */
  moe?: { numExperts: number; expertsPerToken: number; denseLayers: number[]; activeParametersPerToken: number };
  /** Tensor count per dtype. */
  dtypes: Partial<Record<DType, number>>;
  /** Parameters of each decoder layer, from the tensors actually present (index = layer). */
  parametersPerLayer: number[];
  /** Parameters outside the decoder layers (embeddings, final norm, lm_head). */
  globalParameters: number;
  /** Parameters of every tensor. */
  totalParameters: number;
  /** Tensors in the checkpoint. */
  tensorCount: number;
  /** Size of the safetensors files (headers included). */
  bytesOnDisk: number;
  /** Safetensors file names, relative to dir; more than one when sharded. */
  files: string[];
  /** Whether the weights are split over shards with model.safetensors.index.json. */
  sharded: boolean;
  /** Non-fatal findings, e.g. tensors the architecture does not use. */
  warnings: string[];
  /**
   * Problems that make score, eval and prune refuse this checkpoint (today: the tensors hold more
   * layers than num_hidden_layers), as `CODE: message`; `inspect` exits 1 when there are any.
   */
  errors: string[];
}

export function elementCount(t: TensorInfo): number {
  return t.shape.reduce((a, d) => a * d, 1);
}

/** Parameters a token runs through: every expert tensor counted topK / numExperts of the way. */
function moeSummary(c: ModelConfig, total: number): NonNullable<InspectReport['moe']> {
  const m = c.moe!;
  const perExpert = 3 * m.intermediateSize * c.hiddenSize;
  const sparseLayers = c.numHiddenLayers - m.denseLayers.filter((l) => l < c.numHiddenLayers).length;
  return {
    numExperts: m.numExperts, expertsPerToken: m.topK, denseLayers: m.denseLayers,
    activeParametersPerToken: total - sparseLayers * (m.numExperts - m.topK) * perExpert,
  };
}

export function inspectCheckpointInfo(ckpt: Checkpoint, errors: readonly ShortGptError[] = []): InspectReport {
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
    ...(c.multipliers ? { multipliers: c.multipliers } : {}),
    ...(c.noRopeLayers ? { noRopeLayers: c.noRopeLayers } : {}),
    ...(c.rotaryDim !== undefined ? { rotaryDim: c.rotaryDim } : {}),
    ...(c.gemma ? { gemma: c.gemma } : {}),
    ...(c.moe ? { moe: moeSummary(c, total) } : {}),
    dtypes,
    parametersPerLayer: perLayer,
    globalParameters,
    totalParameters: total,
    tensorCount: ckpt.tensors.size,
    bytesOnDisk: ckpt.files.reduce((s, f) => s + f.fileSize, 0),
    files: ckpt.files.map((f) => path.relative(ckpt.dir, f.file)),
    sharded: ckpt.index !== undefined,
    warnings: ckpt.warnings,
    errors: errors.map((e) => `${e.code}: ${e.message}`),
  };
}

/**
 * Reads a checkpoint's config.json and safetensors headers (no weights) and reports its
 * architecture, sizes, dtypes and parameters per layer; `options.revision` picks a snapshot of a
 * Hugging Face cache folder or hub id.
 *
 * @example
 * console.log(formatInspectReport(await inspectCheckpoint('./Llama-2-7b-hf')));
 */
export async function inspectCheckpoint(dir: string, options: { revision?: string } = {}): Promise<InspectReport> {
  // A checkpoint with more layers than declared is still described (that is inspect's job), with
  // the refusal every other command would give listed as an error.
  const errors: ShortGptError[] = [];
  const ckpt = await openCheckpoint(dir, { ...options, onExtraLayers: (e) => errors.push(e) });
  return inspectCheckpointInfo(ckpt, errors);
}

const group = formatCount;

function bytes(n: number): string {
  return n < 1024 ? formatBytes(n) : `${formatBytes(n)} (${group(n)} bytes)`;
}

/** The human-readable form of an {@link InspectReport}, as `shortgpt-native inspect` prints it. */
export function formatInspectReport(r: InspectReport): string {
  const distinct = [...new Set(r.parametersPerLayer)];
  const perLayer = distinct.length <= 1 ? group(distinct[0] ?? 0) : r.parametersPerLayer.map((p, i) => `${i}:${group(p)}`).join(' ');
  const rs = r.ropeScaling;
  const rope = rs.type === 'none' ? 'none'
    : rs.type === 'longrope' ? `longrope (long factors above ${rs.originalMaxPositionEmbeddings} tokens, attention factor ${rs.attentionFactor.toFixed(4)})`
      : `${rs.type} x${rs.factor}${r.gemma?.localRopeTheta != null ? ' (full-attention layers)' : ''}`;
  const lines = [
    `checkpoint     ${r.dir}`,
    `architecture   ${r.architecture} (model_type ${r.modelType || '?'})`,
    `layers         ${r.layers}`,
    `hidden size    ${r.hiddenSize}`,
    `heads          ${r.numAttentionHeads} attention, ${r.numKeyValueHeads} key/value, head_dim ${r.headDim}`,
    `intermediate   ${r.intermediateSize}`,
    `vocab          ${r.vocabSize}${r.tieWordEmbeddings ? ' (lm_head tied to embeddings)' : ''}`,
    `attention      ${r.slidingWindow === null ? 'full causal' : `sliding window ${r.slidingWindow}`}; rope scaling ${rope}`,
    ...(r.multipliers ? [`multipliers    embedding x${r.multipliers.embedding}, residual x${r.multipliers.residual}, attention scale ${r.multipliers.attention}, logits / ${r.multipliers.logitsScaling}`] : []),
    ...(r.noRopeLayers ? [`no RoPE        layers ${r.noRopeLayers.join(', ')}`] : []),
    ...(r.rotaryDim !== undefined ? [`rotary dims    ${r.rotaryDim} of head_dim ${r.headDim} (partial rotary)`] : []),
    ...(r.moe ? [
      `experts        ${r.moe.numExperts} per MoE layer, ${r.moe.expertsPerToken} per token${r.moe.denseLayers.length ? `; dense MLP layers ${r.moe.denseLayers.join(', ')}` : ''}`,
      `active params  ${group(r.moe.activeParametersPerToken)} per token`,
    ] : []),
    ...(r.gemma ? [
      `gemma          (1 + w) norms, GeGLU; embeddings x${r.gemma.embeddingScale.toFixed(4)} (in the weights' dtype), attention scale ${r.gemma.attentionScale.toFixed(6)}`,
      `soft-capping   attention ${r.gemma.attnLogitSoftcapping ?? 'none'}, final logits ${r.gemma.finalLogitSoftcapping ?? 'none'}`,
      `full attention layers ${r.gemma.fullAttentionLayers.join(', ') || 'none'}${r.gemma.localRopeTheta !== null ? `; sliding layers' RoPE base ${r.gemma.localRopeTheta}` : ''}`,
    ] : []),
    `dtypes         ${Object.entries(r.dtypes).map(([d, n]) => `${d} x${n}`).join(', ')}`,
    `parameters     ${group(r.totalParameters)} total; ${perLayer} per layer; ${group(r.globalParameters)} outside layers`,
    `tensors        ${r.tensorCount}`,
    `on disk        ${bytes(r.bytesOnDisk)} in ${r.files.length} file${r.files.length === 1 ? '' : 's'}${r.sharded ? ' (sharded)' : ''}`,
  ];
  // Element by element: push(...list) passes each entry as an argument, and a header with 130k
  // unknown tensors overflows the call stack.
  if (r.warnings.length > 0) {
    lines.push(`warnings       ${r.warnings.length}`);
    for (const w of r.warnings) lines.push(`  - ${w}`);
  }
  if (r.errors.length > 0) {
    lines.push(`ERRORS         ${r.errors.length} (score, eval and prune refuse this checkpoint)`);
    for (const e of r.errors) lines.push(`  - ${e}`);
  }
  // Names and paths come from the files: no control character reaches the terminal raw.
  return `${lines.map(printable).join('\n')}\n`;
}
