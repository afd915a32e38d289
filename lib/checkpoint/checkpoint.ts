/**
 * Opening a checkpoint directory: config.json resolved, every safetensors header validated,
 * the shard index checked against its shards, and every tensor checked against the
 * architecture table. Nothing here reads tensor data.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { quoted } from '../util/printable';
import { globalTensorSpecs, layerIndexOf, layerTensorSpecs } from './architectures';
import { resolveConfig } from './config';
import { findDuplicateKey } from './jsonDuplicates';
import { ggufAdvice, resolveModelLocation, type ModelLocationOptions } from './modelLocation';
import { isComputeDType, readSafetensorsHeader } from './safetensors';
import { INDEX_FILE, SINGLE_FILE, readShardIndex } from './shardIndex';
import { FILE_LIMITS, fileKind, readTextLimited } from '../util/readLimited';
import type { Checkpoint, LayerTensorRole, ModelConfig, SafetensorsFile, ShardIndex, TensorInfo } from './types';

export const CONFIG_FILE = 'config.json';

/** Whether a regular file is there; a directory, device or FIFO by that name is an error saying so. */
async function exists(file: string): Promise<boolean> {
  let st;
  try {
    st = await fs.stat(file);
  } catch {
    return false;
  }
  if (!st.isFile()) throw new ShortGptError('ERR_NOT_REGULAR_FILE', `${file} is ${fileKind(st)}, not a regular file`);
  return true;
}

async function readConfig(file: string, warnings: string[]): Promise<{ raw: Record<string, unknown>; config: ModelConfig }> {
  let text: string;
  try {
    text = await readTextLimited(file, 'model config', FILE_LIMITS.smallJson);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ShortGptError('ERR_CONFIG', `${file}: ${missing ? 'not found; a checkpoint directory needs a config.json' : `cannot read: ${(e as Error).message}`}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ShortGptError('ERR_CONFIG', `${file}: not valid JSON: ${(e as Error).message}`);
  }
  const config = resolveConfig(raw, file);
  // transformers (Python json) also keeps the last of duplicate keys, so this is only a warning.
  let dup = null;
  try {
    dup = findDuplicateKey(text);
  } catch (e) {
    throw new ShortGptError('ERR_CONFIG', `${file}: ${(e as Error).message}`);
  }
  if (dup) warnings.push(`${file}: duplicate key ${quoted(dup.key)}; the last value is used`);
  return { raw: raw as Record<string, unknown>, config };
}

async function readSharded(dir: string, index: ShardIndex, warnings: string[]): Promise<SafetensorsFile[]> {
  const shardNames = [...new Set(index.weightMap.values())].sort();
  for (const name of shardNames) {
    const shardFile = path.join(dir, name);
    const st = await fs.stat(shardFile).catch(() => undefined);
    // A shard that is there but is a directory, a device or a FIFO is not "missing": say what it is.
    if (st !== undefined && !st.isFile()) {
      throw new ShortGptError('ERR_NOT_REGULAR_FILE', `${index.file}: shard '${name}' is ${fileKind(st)} (${shardFile}), not a regular safetensors file`);
    }
    if (st === undefined) {
      const users = [...index.weightMap].filter(([, s]) => s === name).map(([t]) => t);
      throw new ShortGptError('ERR_SHARD_MISSING', `${index.file}: shard ${quoted(name)} (holding ${users.length} tensors, e.g. ${quoted(users[0] ?? '')}) does not exist in ${dir}`);
    }
  }
  const files: SafetensorsFile[] = [];
  for (const name of shardNames) files.push(await readSafetensorsHeader(path.join(dir, name)));
  for (const f of files) {
    const shard = path.basename(f.file);
    for (const t of f.tensors) {
      const listed = index.weightMap.get(t.name);
      if (listed === undefined) throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: tensor ${quoted(t.name)} is in shard ${f.file} but not in weight_map`);
      if (listed !== shard) throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: weight_map puts tensor ${quoted(t.name)} in ${quoted(listed)}, but it is (also) in shard ${f.file}`);
    }
  }
  const byFile = new Map(files.map((f) => [path.basename(f.file), new Set(f.tensors.map((t) => t.name))]));
  for (const [tensor, shard] of index.weightMap) {
    if (!byFile.get(shard)!.has(tensor)) {
      throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: weight_map puts tensor ${quoted(tensor)} in ${quoted(shard)}, but ${path.join(dir, shard)} does not contain it`);
    }
  }
  // total_size is informational in transformers (it sums tensor bytes); a stale value is harmless.
  const total = index.metadata.total_size;
  const actual = files.reduce((s, f) => s + f.tensors.reduce((a, t) => a + t.byteLength, 0), 0);
  if (total !== undefined && total !== actual) warnings.push(`${index.file}: metadata.total_size is ${JSON.stringify(total)} but the shards hold ${actual} tensor bytes`);
  return files;
}

function fmtShape(s: number[]): string {
  return `[${s.join(', ')}]`;
}

/**
 * num_hidden_layers against the layers the tensors hold, before anything is built per declared
 * layer: config.json's count is only a number in a text file (1e7 would otherwise allocate
 * tensor specs for ten million layers), while the tensors present are bounded by the headers.
 * Declaring fewer layers than the checkpoint holds is refused too: scoring or evaluating only the
 * declared layers would silently drop the rest, and the rewrite cannot tell where they go.
 * `onExtraLayers`, when given, receives that error instead (inspect reports it and goes on).
 */
function checkLayerCount(dir: string, config: ModelConfig, tensors: Map<string, TensorInfo>, onExtraLayers?: (e: ShortGptError) => void): void {
  let highest: TensorInfo | undefined;
  let highestLayer = -1;
  const seen = new Set<number>();
  for (const t of tensors.values()) {
    const layer = layerIndexOf(t.name);
    if (layer !== null) seen.add(layer);
    if (layer !== null && layer > highestLayer) {
      highestLayer = layer;
      highest = t;
    }
  }
  const present = highestLayer + 1;
  const declared = config.numHiddenLayers;
  if (declared >= present && seen.size < declared) {
    // Some declared layer has no tensor at all (also when one stray 'model.layers.9999999.x'
    // makes the highest index match a huge declared count). The first such layer is found
    // within 0..seen.size, so this never walks the declared count.
    let absent = 0;
    while (seen.has(absent)) absent++;
    const first = layerTensorSpecs(config, absent)[0]!;
    throw new ShortGptError('ERR_TENSOR_MISSING', `${dir}: config.json declares num_hidden_layers = ${declared}, but the safetensors files hold tensors of ${seen.size} layer${seen.size === 1 ? '' : 's'}${present > 0 ? `, up to layer ${present - 1}` : ''}: tensor ${quoted(first.name)} (expected shape ${fmtShape(first.shape)} for ${config.architecture}) is in none of them`);
  }
  if (declared < present) {
    const t = highest!;
    const holds = seen.size === present ? `holds ${present} layers (0..${present - 1})` : `has tensors of ${seen.size} layers, up to layer ${highestLayer}`;
    const e = new ShortGptError('ERR_TENSOR_LAYER', `${t.file}: tensor ${quoted(t.name)} belongs to layer ${highestLayer}, but config.json has num_hidden_layers = ${declared} while the checkpoint ${holds}; `
      + `refusing to use only the first ${declared}: correct num_hidden_layers, or remove the extra layers' tensors`);
    if (onExtraLayers) onExtraLayers(e);
    else throw e;
  }
}

/** Every expected tensor present with its shape and a compute dtype; the rest become warnings. */
function checkAgainstTable(dir: string, config: ModelConfig, tensors: Map<string, TensorInfo>, warnings: string[]): void {
  const expected: { name: string; shape: number[] }[] = [...globalTensorSpecs(config)];
  // A loop, not push(...specs) per layer or over all: bounded by checkLayerCount above, but a
  // spread of a long array into a call overflows the stack.
  for (let l = 0; l < config.numHiddenLayers; l++) for (const spec of layerTensorSpecs(config, l)) expected.push(spec);
  const missing = expected.filter((e) => !tensors.has(e.name));
  if (missing.length > 0) {
    const first = missing[0]!;
    const more = missing.length > 1 ? ` (${missing.length - 1} more missing, e.g. ${quoted(missing[missing.length - 1]!.name)})` : '';
    throw new ShortGptError('ERR_TENSOR_MISSING', `${dir}: tensor ${quoted(first.name)} (expected shape ${fmtShape(first.shape)} for ${config.architecture}) is in none of the checkpoint's safetensors files${more}`);
  }
  for (const e of expected) {
    const t = tensors.get(e.name)!;
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new ShortGptError('ERR_TENSOR_SHAPE', `${t.file}: tensor ${quoted(t.name)} has shape ${fmtShape(t.shape)}; ${config.architecture} with this config.json expects ${fmtShape(e.shape)}`);
    }
    if (!isComputeDType(t.dtype)) {
      throw new ShortGptError('ERR_SAFETENSORS_DTYPE', `${t.file}: tensor ${quoted(t.name)} has dtype ${t.dtype}; model weights must be F32, F16 or BF16`);
    }
  }
  const known = new Set(expected.map((e) => e.name));
  for (const t of tensors.values()) {
    if (known.has(t.name)) continue;
    const layer = layerIndexOf(t.name);
    const why = layer !== null && layer >= config.numHiddenLayers ? ` (layer ${layer} is beyond num_hidden_layers ${config.numHiddenLayers})` : '';
    warnings.push(`${t.file}: unknown tensor ${quoted(t.name)} ${t.dtype} ${fmtShape(t.shape)}${why}; ${config.architecture} does not use it`);
  }
}

export interface OpenCheckpointOptions extends Pick<ModelLocationOptions, 'revision'> {
  /**
   * Called with the ERR_TENSOR_LAYER error when the tensors hold more layers than config.json's
   * num_hidden_layers, instead of throwing it (`inspect` describes such a checkpoint and then
   * fails). Everything that computes or writes leaves this unset and refuses.
   */
  onExtraLayers?: (e: ShortGptError) => void;
}

/**
 * Opens the checkpoint `model` names: a directory, a Hugging Face cache folder or a hub id in
 * the local cache (lib/checkpoint/modelLocation.ts; `options.revision` picks the snapshot).
 */
export async function openCheckpoint(model: string, options: OpenCheckpointOptions = {}): Promise<Checkpoint> {
  const abs = resolveModelLocation(model, options).dir;
  const warnings: string[] = [];
  const { raw, config } = await readConfig(path.join(abs, CONFIG_FILE), warnings);

  const single = path.join(abs, SINGLE_FILE);
  const indexFile = path.join(abs, INDEX_FILE);
  let files: SafetensorsFile[];
  let index: ShardIndex | undefined;
  if (await exists(single)) {
    // transformers loads model.safetensors first when both are present.
    if (await exists(indexFile)) warnings.push(`${indexFile}: ignored because ${SINGLE_FILE} is present`);
    files = [await readSafetensorsHeader(single)];
  } else if (await exists(indexFile)) {
    index = await readShardIndex(indexFile);
    files = await readSharded(abs, index, warnings);
  } else {
    const names = await fs.readdir(abs);
    const gguf = names.filter((n) => n.toLowerCase().endsWith('.gguf'));
    if (gguf.length > 0) throw new ShortGptError('ERR_GGUF', `${abs}: no ${SINGLE_FILE} or ${INDEX_FILE}, only GGUF weights (${gguf.slice(0, 3).join(', ')}${gguf.length > 3 ? ', ...' : ''}). ${ggufAdvice()}`);
    const other = names.filter((n) => n.endsWith('.bin') || n.endsWith('.pt') || n.endsWith('.gguf') || (n.endsWith('.safetensors') && n !== SINGLE_FILE));
    const hint = other.length ? `; found ${other.slice(0, 3).join(', ')}, but only ${SINGLE_FILE} or ${INDEX_FILE} with its shards is read (convert .bin weights to safetensors)` : '';
    throw new ShortGptError('ERR_NO_WEIGHTS', `${abs}: no ${SINGLE_FILE} or ${INDEX_FILE}${hint}`);
  }

  const tensors = new Map<string, TensorInfo>();
  for (const f of files) {
    for (const t of f.tensors) {
      const prev = tensors.get(t.name);
      if (prev) throw new ShortGptError('ERR_SHARD_INDEX', `tensor ${quoted(t.name)} is in both ${prev.file} and ${t.file}`);
      tensors.set(t.name, t);
    }
  }
  checkLayerCount(abs, config, tensors, options.onExtraLayers);
  checkAgainstTable(abs, config, tensors, warnings);
  return { dir: abs, config, rawConfig: raw, files, index, tensors, warnings };
}

/** Layer `layer`'s tensors by role (only the roles the architecture uses). */
export function layerTensors(ckpt: Checkpoint, layer: number): Map<LayerTensorRole, TensorInfo> {
  if (!Number.isSafeInteger(layer) || layer < 0 || layer >= ckpt.config.numHiddenLayers) {
    throw new ShortGptError('ERR_LAYER_INDEX', `layer ${layer} is out of range: ${ckpt.dir} has layers 0..${ckpt.config.numHiddenLayers - 1}`);
  }
  const out = new Map<LayerTensorRole, TensorInfo>();
  for (const spec of layerTensorSpecs(ckpt.config, layer)) {
    const t = ckpt.tensors.get(spec.name);
    if (!t) throw new ShortGptError('ERR_TENSOR_MISSING', `${ckpt.dir}: tensor ${quoted(spec.name)} is missing`);
    out.set(spec.role, t);
  }
  return out;
}
