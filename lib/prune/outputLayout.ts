/**
 * What the rewritten checkpoint's safetensors files hold: each kept tensor's new name, the output
 * file it goes to and its place there. Pure: decides names and order, touches no file.
 */
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { quoted } from '../util/printable';
import { layerIndexOf, layerTensorName } from '../checkpoint/architectures';
import type { SafetensorsFile, TensorInfo } from '../checkpoint/types';
import type { LayerPlan } from './layerPlan';

export interface OutputTensor {
  /** Name in the output (renumbered when it belongs to a kept layer). */
  name: string;
  source: TensorInfo;
}

export interface OutputFile {
  /** File name inside the output directory. */
  name: string;
  /** In data order: the source's order (file by file, then by offset). */
  tensors: OutputTensor[];
  /** Sum of the tensors' byte lengths. */
  dataBytes: number;
  /** The source metadata of the files these tensors came from (first writer wins per key). */
  sourceMetadata: Record<string, string>;
}

export interface OutputLayout {
  sharded: boolean;
  files: OutputFile[];
  /** Source tensor names dropped with their layers. */
  removedTensors: string[];
  totalBytes: number;
}

/**
 * The new name of `name`, or null when its layer is removed. Only the HF per-layer prefix
 * `model.layers.N.` is renumbered (DESIGN.md, "Rewriting copies bytes"); other names pass unchanged.
 */
export function renameTensor(name: string, plan: LayerPlan, file: string): string | null {
  const old = layerIndexOf(name);
  if (old === null) return name;
  if (old >= plan.sourceLayers) {
    throw new ShortGptError(
      'ERR_TENSOR_LAYER',
      `${file}: tensor ${quoted(name)} belongs to layer ${old}, but config.json has num_hidden_layers = ${plan.sourceLayers}; cannot tell where it goes after the removal`,
    );
  }
  const neu = plan.mapping.get(old);
  if (neu === undefined) return null;
  return layerTensorName(neu, name.slice(layerTensorName(old, '').length));
}

/** model-0000k-of-0000n.safetensors, the name transformers' save_pretrained gives shard k of n. */
export function shardFileName(k: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, '0');
  return `model-${pad(k)}-of-${pad(n)}.safetensors`;
}

/**
 * Single file in -> the same file name out. Sharded in -> tensors packed in source order into
 * shards no larger than the largest source shard (a lone tensor bigger than that gets a shard of
 * its own), so shards come out about the source's size and the reader's per-file costs stay as
 * the source author chose them.
 */
export function planOutputLayout(files: readonly SafetensorsFile[], sharded: boolean, plan: LayerPlan): OutputLayout {
  const ordered = [...files].sort((a, b) => (path.basename(a.file) < path.basename(b.file) ? -1 : path.basename(a.file) > path.basename(b.file) ? 1 : 0));
  const removedTensors: string[] = [];
  const kept: Array<OutputTensor & { metadata: Record<string, string> | undefined }> = [];
  for (const f of ordered) {
    for (const t of f.tensors) {
      const name = renameTensor(t.name, plan, f.file);
      if (name === null) removedTensors.push(t.name);
      else kept.push({ name, source: t, metadata: f.metadata });
    }
  }
  const totalBytes = kept.reduce((s, t) => s + t.source.byteLength, 0);

  const groups: (typeof kept)[] = [];
  if (!sharded) {
    if (ordered.length !== 1) throw new Error(`internal: an unsharded checkpoint has ${ordered.length} files`);
    groups.push(kept);
  } else {
    const target = Math.max(1, ...ordered.map((f) => f.tensors.reduce((s, t) => s + t.byteLength, 0)));
    let current: typeof kept = [];
    let bytes = 0;
    for (const t of kept) {
      if (current.length > 0 && bytes + t.source.byteLength > target) {
        groups.push(current);
        current = [];
        bytes = 0;
      }
      current.push(t);
      bytes += t.source.byteLength;
    }
    if (current.length > 0 || groups.length === 0) groups.push(current);
  }

  const outFiles = groups.map((g, i): OutputFile => {
    const sourceMetadata: Record<string, string> = {};
    for (const t of g) for (const [k, v] of Object.entries(t.metadata ?? {})) if (!(k in sourceMetadata)) sourceMetadata[k] = v;
    // A shard with no tensors (only when every kept tensor is gone, which the plan forbids) would
    // still need the source's format tag.
    if (g.length === 0) Object.assign(sourceMetadata, ordered[0]?.metadata ?? {});
    return {
      name: sharded ? shardFileName(i + 1, groups.length) : path.basename(ordered[0]!.file),
      tensors: g.map(({ name, source }) => ({ name, source })),
      dataBytes: g.reduce((s, t) => s + t.source.byteLength, 0),
      sourceMetadata,
    };
  });
  return { sharded, files: outFiles, removedTensors, totalBytes };
}
