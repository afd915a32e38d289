/**
 * Opening a checkpoint directory: config.json resolved, every safetensors header validated,
 * the shard index checked against its shards, and every tensor checked against the
 * architecture table. Nothing here reads tensor data.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { globalTensorSpecs, layerIndexOf, layerTensorSpecs } from './architectures';
import { resolveConfig } from './config';
import { findDuplicateKey } from './jsonDuplicates';
import { ggufAdvice, resolveModelLocation, type ModelLocationOptions } from './modelLocation';
import { isComputeDType, readSafetensorsHeader } from './safetensors';
import { INDEX_FILE, SINGLE_FILE, readShardIndex } from './shardIndex';
import type { Checkpoint, LayerTensorRole, ModelConfig, SafetensorsFile, ShardIndex, TensorInfo } from './types';

export const CONFIG_FILE = 'config.json';

async function exists(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

async function readConfig(file: string, warnings: string[]): Promise<{ raw: Record<string, unknown>; config: ModelConfig }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
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
  if (dup) warnings.push(`${file}: duplicate key '${dup.key}'; the last value is used`);
  return { raw: raw as Record<string, unknown>, config };
}

async function readSharded(dir: string, index: ShardIndex, warnings: string[]): Promise<SafetensorsFile[]> {
  const shardNames = [...new Set(index.weightMap.values())].sort();
  for (const name of shardNames) {
    if (!(await exists(path.join(dir, name)))) {
      const users = [...index.weightMap].filter(([, s]) => s === name).map(([t]) => t);
      throw new ShortGptError('ERR_SHARD_MISSING', `${index.file}: shard '${name}' (holding ${users.length} tensors, e.g. '${users[0]}') does not exist in ${dir}`);
    }
  }
  const files: SafetensorsFile[] = [];
  for (const name of shardNames) files.push(await readSafetensorsHeader(path.join(dir, name)));
  for (const f of files) {
    const shard = path.basename(f.file);
    for (const t of f.tensors) {
      const listed = index.weightMap.get(t.name);
      if (listed === undefined) throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: tensor '${t.name}' is in shard ${f.file} but not in weight_map`);
      if (listed !== shard) throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: weight_map puts tensor '${t.name}' in '${listed}', but it is (also) in shard ${f.file}`);
    }
  }
  const byFile = new Map(files.map((f) => [path.basename(f.file), new Set(f.tensors.map((t) => t.name))]));
  for (const [tensor, shard] of index.weightMap) {
    if (!byFile.get(shard)!.has(tensor)) {
      throw new ShortGptError('ERR_SHARD_INDEX', `${index.file}: weight_map puts tensor '${tensor}' in '${shard}', but ${path.join(dir, shard)} does not contain it`);
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

/** Every expected tensor present with its shape and a compute dtype; the rest become warnings. */
function checkAgainstTable(dir: string, config: ModelConfig, tensors: Map<string, TensorInfo>, warnings: string[]): void {
  const expected: { name: string; shape: number[] }[] = [...globalTensorSpecs(config)];
  for (let l = 0; l < config.numHiddenLayers; l++) expected.push(...layerTensorSpecs(config, l));
  const missing = expected.filter((e) => !tensors.has(e.name));
  if (missing.length > 0) {
    const first = missing[0]!;
    const more = missing.length > 1 ? ` (${missing.length - 1} more missing, e.g. '${missing[missing.length - 1]!.name}')` : '';
    throw new ShortGptError('ERR_TENSOR_MISSING', `${dir}: tensor '${first.name}' (expected shape ${fmtShape(first.shape)} for ${config.architecture}) is in none of the checkpoint's safetensors files${more}`);
  }
  for (const e of expected) {
    const t = tensors.get(e.name)!;
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new ShortGptError('ERR_TENSOR_SHAPE', `${t.file}: tensor '${t.name}' has shape ${fmtShape(t.shape)}; ${config.architecture} with this config.json expects ${fmtShape(e.shape)}`);
    }
    if (!isComputeDType(t.dtype)) {
      throw new ShortGptError('ERR_SAFETENSORS_DTYPE', `${t.file}: tensor '${t.name}' has dtype ${t.dtype}; model weights must be F32, F16 or BF16`);
    }
  }
  const known = new Set(expected.map((e) => e.name));
  for (const t of tensors.values()) {
    if (known.has(t.name)) continue;
    const layer = layerIndexOf(t.name);
    const why = layer !== null && layer >= config.numHiddenLayers ? ` (layer ${layer} is beyond num_hidden_layers ${config.numHiddenLayers})` : '';
    warnings.push(`${t.file}: unknown tensor '${t.name}' ${t.dtype} ${fmtShape(t.shape)}${why}; ${config.architecture} does not use it`);
  }
}

/**
 * Opens the checkpoint `model` names: a directory, a Hugging Face cache folder or a hub id in
 * the local cache (lib/checkpoint/modelLocation.ts; `options.revision` picks the snapshot).
 */
export async function openCheckpoint(model: string, options: Pick<ModelLocationOptions, 'revision'> = {}): Promise<Checkpoint> {
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
      if (prev) throw new ShortGptError('ERR_SHARD_INDEX', `tensor '${t.name}' is in both ${prev.file} and ${t.file}`);
      tensors.set(t.name, t);
    }
  }
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
    if (!t) throw new ShortGptError('ERR_TENSOR_MISSING', `${ckpt.dir}: tensor '${spec.name}' is missing`);
    out.set(spec.role, t);
  }
  return out;
}
