/**
 * The layer-removal rewrite: a new checkpoint directory without the chosen layers, every kept
 * tensor copied byte for byte (never decoded), later layers renumbered, config.json edited, the
 * other files copied, provenance recorded (shortgpt.json; mergekit.yaml, the same cut for mergekit;
 * README.md, the source's model card with what was removed on top). Written beside OUT and renamed into place only after
 * the result has been read back through the same validator as any input (DESIGN.md, "Rewriting
 * copies bytes"). The source directory is only ever opened for reading.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CONFIG_FILE, openCheckpoint } from '../checkpoint/checkpoint';
import { encodeSafetensorsHeader } from '../checkpoint/safetensorsHeader';
import { INDEX_FILE } from '../checkpoint/shardIndex';
import type { Checkpoint, SafetensorsFile } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { FILE_LIMITS, readTextLimited } from '../util/readLimited';
import { checkpointMergekitDtype, MERGEKIT_YAML, mergekitFile } from '../report/cuts';
import { MODEL_CARD, renderModelCard } from '../report/modelCard';
import type { PruneReport } from '../report/types';
import { packageVersion } from '../version';
import { checkOutputPlacement, checkOutputVacancy, withAtomicOutput } from './atomicOutput';
import { editConfig } from './configEdit';
import { patchConfigText } from './configText';
import { abortedError, closeFd, coalesceSpans, openFd, DEFAULT_CHUNK_BYTES, RangeCopier, type CopySpan } from './copyRange';
import { closeQuietly, fsyncOut, openOut, outputError, writeAllAt, writeFileDurable } from './durable';
import { acquireOutputLock, type OutputLock } from './outputLock';
import { checkOutputSpace } from './outputSpace';
import { planLayerRemoval, type LayerPlan } from './layerPlan';
import { copyOtherFile, linkedOutside, listOtherFiles } from './otherFiles';
import { printable } from '../util/printable';
import { planOutputLayout, type OutputFile, type OutputLayout } from './outputLayout';
import { layerMappingRecord, PROVENANCE_FILE, safetensorsMetadata, type Provenance } from './provenance';

/** Progress of a rewrite, by bytes of tensor data copied. */
export interface RewriteProgress {
  /** Copying tensors, copying the other files, or checking the output. */
  phase: 'tensors' | 'files' | 'verify';
  /** Tensor bytes copied so far, and in all. */
  bytesDone: number;
  bytesTotal: number;
  /** The output file being written. */
  file?: string;
}

/** Options of {@link rewriteCheckpoint}: which layers to delete, and what to add to the output. */
export interface RewriteOptions {
  /** 0-based indices of the layers to delete. */
  removeLayers: readonly number[];
  /** Replace a non-empty OUT (only after the new checkpoint is complete). */
  force?: boolean;
  /** Called as bytes are copied. */
  onProgress?: (p: RewriteProgress) => void;
  /** Aborting stops at the next chunk, removes the temporary directory and rejects with ERR_ABORTED. */
  signal?: AbortSignal;
  /** Extra string entries for every safetensors `__metadata__` and shortgpt.json (e.g. scores). */
  extraMetadata?: Record<string, string>;
  /**
   * More files for the output directory, name -> content (e.g. report.json): plain file names,
   * written inside the temporary directory so they appear with the checkpoint or not at all.
   * They take precedence over a source file of the same name (a previous run's report).
   */
  extraFiles?: Record<string, string | Buffer>;
  /**
   * Kept tensors whose bytes are replaced (source tensor name -> new little-endian bytes of the
   * same dtype and shape, hence the same length): --heal's patched down_proj. Every other tensor
   * is copied byte for byte; the layout and the atomicity are the same.
   */
  replaceTensors?: ReadonlyMap<string, Buffer>;
  /** Copy buffer size (two are used); default 8 MiB. */
  chunkBytes?: number;
  /**
   * The prune report when the layers were chosen by score: the model card (README.md) then also
   * says by what score, on what data, and the perplexity before and after when measured.
   */
  report?: PruneReport;
  /**
   * One-line notes for people as the rewrite goes: source files left out and why, and what was
   * cleaned up of an earlier, interrupted run beside OUT.
   */
  onNote?: (message: string) => void;
}

/** What {@link rewriteCheckpoint} wrote. */
export interface RewriteResult {
  /** The source checkpoint directory (absolute). */
  sourceDir: string;
  /** The output directory (absolute). */
  outDir: string;
  /** Decoder layers of the source. */
  sourceLayers: number;
  /** Source indices deleted, ascending. */
  removedLayers: number[];
  /** Source indices kept, ascending (new layer i is keptLayers[i]). */
  keptLayers: number[];
  /** Old index -> new index for every kept layer. */
  layerMapping: Record<string, number>;
  /** num_hidden_layers of the output's config.json. */
  numHiddenLayers: number;
  /** Output safetensors file names, in order. */
  files: string[];
  /** Whether the output is sharded (with model.safetensors.index.json), as the source was. */
  sharded: boolean;
  /** Tensors written. */
  tensorsWritten: number;
  /** Names of the source tensors left out (the deleted layers'). */
  tensorsRemoved: string[];
  /** Tensor bytes written (excluding headers). */
  tensorBytes: number;
  /** Per-layer config.json lists cut to the kept layers (e.g. layer_types). */
  configFieldsSliced: string[];
  /** Other config.json fields rewritten because they count layers (e.g. max_window_layers); num_hidden_layers always changes. */
  configFieldsAdjusted: string[];
  /** Other files copied from the source (tokenizer, generation config, ...). */
  copiedFiles: string[];
  /** Names of `extraFiles` written. */
  extraFiles: string[];
  /**
   * Files the rewrite writes about the cut: mergekit.yaml (rebuilds the output from the source
   * with `mergekit-yaml`) and README.md (the source's model card with a section on what was
   * removed on top, or a new card), unless `extraFiles` supplies them.
   */
  generatedFiles: string[];
  /** Source files not copied, and why (other weight files would still hold the removed layers; .git; caches). */
  skippedFiles: Array<{ path: string; reason: string }>;
  /** The source's warnings (unknown tensors...) and ours (skipped files). */
  warnings: string[];
}

/**
 * Writes the checkpoint in `srcDir` to `outDir` without the layers `options.removeLayers`: kept
 * tensors are copied byte for byte and renumbered, config.json is updated, the tokenizer and
 * other files are copied. The output is written to a temporary directory and renamed into place
 * when complete; the source is never modified. Rejects with ERR_OUTPUT_EXISTS when `outDir` is
 * not empty (unless `force`).
 *
 * @example
 * const result = await rewriteCheckpoint('./Llama-2-7b-hf', './Llama-2-7b-short', { removeLayers: [21, 22, 23] });
 * console.log(result.numHiddenLayers, result.files);
 */
export async function rewriteCheckpoint(srcDir: string, outDir: string, options: RewriteOptions): Promise<RewriteResult> {
  // Placement is checked before opening so a bad --out fails fast, whatever the model size.
  checkOutputPlacement(srcDir, outDir);
  return rewriteOpenedCheckpoint(await openCheckpoint(srcDir), outDir, options);
}

/**
 * The rewrite of an already opened (validated) checkpoint, for callers that scored it first.
 * Holds OUT's lock (lib/prune/outputLock.ts) while it runs: a second writer to the same OUT is
 * refused with ERR_OUTPUT_LOCKED.
 */
export async function rewriteOpenedCheckpoint(ckpt: Checkpoint, outDir: string, options: RewriteOptions): Promise<RewriteResult> {
  const outAbs = path.resolve(outDir);
  checkOutputPlacement(ckpt.dir, outAbs);
  const lock = await acquireOutputLock(outAbs);
  for (const n of lock.notes) options.onNote?.(n);
  let failed = true;
  try {
    const result = await rewriteHoldingLock(ckpt, outAbs, options);
    failed = false;
    return result;
  } finally {
    lock.release(failed);
  }
}

/**
 * The rewrite proper, for a caller that already holds OUT's lock (prune() takes it before
 * scoring, so that a locked, read-only or full output is found before the work, not after).
 */
export async function rewriteHoldingLock(ckpt: Checkpoint, outDir: string, options: RewriteOptions): Promise<RewriteResult> {
  const outAbs = path.resolve(outDir);
  checkOutputPlacement(ckpt.dir, outAbs);
  const plan = planLayerRemoval(ckpt.config.numHiddenLayers, options.removeLayers);
  const layout = planOutputLayout(ckpt.files, ckpt.index !== undefined, plan);
  const edit = editConfig(ckpt.rawConfig, plan);
  const extra = { ...(options.extraMetadata ?? {}) };
  for (const [k, v] of Object.entries(extra)) {
    if (typeof v !== 'string') throw new ShortGptError('ERR_METADATA', `extraMetadata '${k}' must be a string, got ${typeof v}`);
  }
  const replace = options.replaceTensors ?? new Map<string, Buffer>();
  for (const [name, bytes] of replace) {
    const t = ckpt.tensors.get(name);
    if (t === undefined) throw new ShortGptError('ERR_REPLACE_TENSOR', `replaceTensors: ${ckpt.dir} has no tensor '${name}'`);
    if (!layout.files.some((f) => f.tensors.some((o) => o.source.name === name))) {
      throw new ShortGptError('ERR_REPLACE_TENSOR', `replaceTensors: tensor '${name}' belongs to a removed layer`);
    }
    if (bytes.length !== t.byteLength) {
      throw new ShortGptError('ERR_REPLACE_TENSOR', `replaceTensors: tensor '${name}' (${t.dtype} [${t.shape.join(', ')}]) takes ${t.byteLength} bytes, got ${bytes.length}`);
    }
  }
  const extraFiles = Object.entries(options.extraFiles ?? {});
  const ours = new Set([CONFIG_FILE, INDEX_FILE, PROVENANCE_FILE, ...layout.files.map((f) => f.name)]);
  for (const [name] of extraFiles) {
    if (!/^[^/\\]+$/.test(name) || name === '.' || name === '..' || ours.has(name)) {
      throw new ShortGptError('ERR_EXTRA_FILE', `extraFiles: '${name}' must be a plain file name other than the checkpoint's own files (${[...ours].join(', ')})`);
    }
  }
  const extraNames = new Set(extraFiles.map(([name]) => name));
  const generated = [MERGEKIT_YAML, MODEL_CARD].filter((name) => !extraNames.has(name));
  // The source's README.md and mergekit.yaml describe the source; ours replace them.
  const weightFiles = new Set([...ckpt.files.map((f) => path.relative(ckpt.dir, f.file).split(path.sep).join('/')), ...ours, ...extraNames, MERGEKIT_YAML, MODEL_CARD]);
  const others = await listOtherFiles(ckpt.dir, weightFiles);
  // Names from the model folder are escaped: they reach the terminal.
  const sourceNotes = others.skipped.map((s) => printable(`${path.join(ckpt.dir, s.path)}: not copied: ${s.reason}`));
  for (const n of sourceNotes) options.onNote?.(n);
  const vacancy = await checkOutputVacancy(outAbs, options.force === true);
  const signal = options.signal;
  if (signal?.aborted) throw abortedError(signal);

  const previousProvenance = await readJsonIfPresent(ckpt.dir, PROVENANCE_FILE, sourceNotes, options);
  const sourceConfigText = await readTextLimited(path.join(ckpt.dir, CONFIG_FILE), 'model config', FILE_LIMITS.smallJson);
  const about = await aboutTheCut(ckpt, plan, layout, options, [...extraNames], sourceNotes);
  const headers = layout.files.map((out) => encodeSafetensorsHeader(
    out.tensors.map((t) => ({ name: t.name, dtype: t.source.dtype, shape: t.source.shape, byteLength: t.source.byteLength })),
    safetensorsMetadata(out.sourceMetadata, plan, extra),
  ));
  // Everything but the small text files (config, index, provenance, card), which the 64 KiB per file covers.
  const expected = layout.totalBytes + headers.reduce((s, h) => s + h.length, 0) + others.bytes + 65536 * (layout.files.length + others.copy.length + 8);
  await checkOutputSpace(outAbs, expected, 'the pruned checkpoint needs about');
  const progress = { bytesDone: 0, bytesTotal: layout.totalBytes };
  const report = (phase: RewriteProgress['phase'], file?: string) => options.onProgress?.({ phase, ...progress, file });

  await withAtomicOutput(outAbs, vacancy, async (tmp) => {
    const copier = new RangeCopier(options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    const sources = await openSources(ckpt.files);
    // Each file's fsync runs while the next file is copied; all are done before anything below
    // (and the rename into OUT) happens.
    const flushes: Promise<void>[] = [];
    try {
      for (const [i, out] of layout.files.entries()) {
        report('tensors', out.name);
        const written = await writeSafetensors(path.join(tmp, out.name), out, sources, copier, headers[i]!, signal, replace, (n) => {
          progress.bytesDone += n;
          report('tensors', out.name);
        });
        flushes.push(written.flush);
      }
      await Promise.all(flushes);
      await checkSourcesUnchanged(sources);
    } finally {
      await Promise.allSettled(flushes);
      await Promise.all([...sources.values()].map((s) => closeFd(s.fd).catch(() => undefined)));
    }
    if (layout.sharded) await writeJson(path.join(tmp, INDEX_FILE), shardIndexJson(ckpt, layout));
    await writeText(path.join(tmp, CONFIG_FILE), patchConfigText(sourceConfigText, ckpt.rawConfig, edit.config));
    const provenance: Provenance = {
      tool: 'shortgpt-native',
      version: packageVersion,
      createdAt: new Date().toISOString(),
      source: {
        dir: ckpt.dir,
        architecture: ckpt.config.architecture,
        numHiddenLayers: plan.sourceLayers,
        ...(previousProvenance !== undefined ? { provenance: previousProvenance } : {}),
      },
      removedLayers: plan.removed,
      keptLayers: plan.kept,
      layerMapping: layerMappingRecord(plan),
      numHiddenLayers: plan.kept.length,
      configFieldsSliced: edit.slicedFields,
      configFieldsAdjusted: edit.adjustedFields,
      metadata: extra,
      skippedFiles: others.skipped,
    };
    await writeJson(path.join(tmp, PROVENANCE_FILE), provenance);
    for (const rel of others.copy) {
      if (signal?.aborted) throw abortedError(signal);
      report('files', rel);
      await copyOtherFile(others.from.get(rel)!, tmp, rel);
    }
    for (const [name, content] of extraFiles) await writeText(path.join(tmp, name), content);
    for (const name of generated) await writeText(path.join(tmp, name), about[name]);
    if (signal?.aborted) throw abortedError(signal);
    report('verify');
    await verifyOutput(tmp, layout, plan);
  });

  return {
    sourceDir: ckpt.dir,
    outDir: outAbs,
    sourceLayers: plan.sourceLayers,
    removedLayers: plan.removed,
    keptLayers: plan.kept,
    layerMapping: layerMappingRecord(plan),
    numHiddenLayers: plan.kept.length,
    files: layout.files.map((f) => f.name),
    sharded: layout.sharded,
    tensorsWritten: layout.files.reduce((s, f) => s + f.tensors.length, 0),
    tensorsRemoved: layout.removedTensors,
    tensorBytes: layout.totalBytes,
    configFieldsSliced: edit.slicedFields,
    configFieldsAdjusted: edit.adjustedFields,
    copiedFiles: others.copy,
    extraFiles: extraFiles.map(([name]) => name),
    generatedFiles: generated,
    skippedFiles: others.skipped,
    warnings: [...ckpt.warnings, ...sourceNotes],
  };
}

/** mergekit.yaml and README.md for the output: the same cut in mergekit's terms, and the model card. */
async function aboutTheCut(ckpt: Checkpoint, plan: LayerPlan, layout: OutputLayout, options: RewriteOptions, extraNames: string[], notes: string[]): Promise<Record<string, string>> {
  const tool = `shortgpt-native ${packageVersion}`;
  const replaced = [...(options.replaceTensors?.keys() ?? [])];
  let card: string | null = null;
  if (await insideModelFolder(ckpt.dir, MODEL_CARD, 'a new model card was written instead', notes, options)) {
    try {
      card = await readTextLimited(path.join(ckpt.dir, MODEL_CARD), 'model card', FILE_LIMITS.modelCard);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A README.md that is a directory, device or FIFO is no card (and is not opened: a FIFO would hang).
      if (code === 'ERR_FILE_TOO_LARGE') throw e;
      if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ERR_NOT_REGULAR_FILE') throw new ShortGptError('ERR_SOURCE_IO', `cannot read the model card ${path.join(ckpt.dir, MODEL_CARD)}: ${(e as Error).message}`);
    }
  }
  const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
  let before = 0;
  for (const t of ckpt.tensors.values()) before += count(t.shape);
  let after = 0;
  for (const f of layout.files) for (const t of f.tensors) after += count(t.source.shape);
  return {
    [MERGEKIT_YAML]: (replaced.length ? `# Plain deletion: the healed down_proj tensors of this output (${replaced.join(', ')}) are not reproduced by mergekit.\n` : '') +
      mergekitFile(ckpt.dir, plan.sourceLayers, plan.removed, { dtype: checkpointMergekitDtype(ckpt), tool }),
    [MODEL_CARD]: renderModelCard(card, {
      source: ckpt.dir,
      architecture: ckpt.config.architecture,
      sourceLayers: plan.sourceLayers,
      removed: plan.removed,
      kept: plan.kept,
      parameters: { before, after },
      report: options.report,
      tool,
      files: extraNames,
      replaced,
    }),
  };
}

interface OpenSource {
  fd: number;
  path: string;
  /** fstat at open: a change by the end of the copy means the bytes copied may be a mix. */
  stat: fs.Stats;
}

/**
 * Opens each source file once, read-only, and checks it still has the size its header was
 * validated at (a file replaced since would make the copied offsets meaningless).
 */
async function openSources(files: readonly SafetensorsFile[]): Promise<Map<string, OpenSource>> {
  const sources = new Map<string, OpenSource>();
  try {
    for (const f of files) {
      const fd = await openFd(f.file, 'r');
      const stat = await new Promise<fs.Stats>((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
      sources.set(f.file, { fd, path: f.file, stat });
      const size = stat.size;
      if (size !== f.fileSize) {
        throw new ShortGptError('ERR_SOURCE_CHANGED', `${f.file}: file is now ${size} bytes, but was ${f.fileSize} when its header was read; was it modified during the rewrite?`);
      }
    }
  } catch (e) {
    await Promise.all([...sources.values()].map((s) => closeFd(s.fd).catch(() => undefined)));
    throw e;
  }
  return sources;
}

/**
 * Each source must be as it was when opened: written to (mtime, ctime) or resized during the
 * copy, the output may hold a mix of old and new bytes (copy_file_range and read() see writes as
 * they happen), which the header read-back cannot detect.
 */
async function checkSourcesUnchanged(sources: Map<string, OpenSource>): Promise<void> {
  for (const s of sources.values()) {
    const now = await new Promise<fs.Stats>((resolve, reject) => fs.fstat(s.fd, (err, st) => (err ? reject(err) : resolve(st))));
    if (now.size !== s.stat.size || now.mtimeMs !== s.stat.mtimeMs || now.ctimeMs !== s.stat.ctimeMs) {
      throw new ShortGptError('ERR_SOURCE_CHANGED', `${s.path}: the file was modified while it was being copied (size ${s.stat.size} -> ${now.size}, modified ${new Date(now.mtimeMs).toISOString()}); nothing was written: run again once it is stable`);
    }
  }
}

async function writeSafetensors(
  file: string,
  out: OutputFile,
  sources: Map<string, OpenSource>,
  copier: RangeCopier,
  header: Buffer,
  signal: AbortSignal | undefined,
  replace: ReadonlyMap<string, Buffer>,
  onBytes: (n: number) => void,
): Promise<{ flush: Promise<void> }> {
  const spans: CopySpan[] = [];
  const writes: Array<{ bytes: Buffer; dstOffset: number }> = [];
  let dst = header.length;
  for (const t of out.tensors) {
    const src = sources.get(t.source.file)!;
    const bytes = replace.get(t.source.name);
    if (bytes !== undefined) writes.push({ bytes, dstOffset: dst });
    else spans.push({ srcFd: src.fd, srcPath: src.path, srcOffset: t.source.dataOffset, dstOffset: dst, length: t.source.byteLength });
    dst += t.source.byteLength;
  }
  const fd = await openOut(file, 'wx', 0o644);
  try {
    await writeAllAt(fd, file, header, 0);
    for (const span of coalesceSpans(spans)) await copier.copy(span, fd, signal, onBytes);
    for (const w of writes) {
      await writeAllAt(fd, file, w.bytes, w.dstOffset);
      onBytes(w.bytes.length);
    }
  } catch (e) {
    await closeQuietly(fd);
    throw outputError(e, 'writing', file);
  }
  // Durable before the rename makes it visible under OUT. Handed back in an object (a returned
  // promise would be awaited here), so the flush overlaps the next file's copy; the catch keeps a
  // failure from being reported as unhandled before the caller awaits it.
  const flush = fsyncOut(fd, file).finally(() => closeQuietly(fd));
  flush.catch(() => undefined);
  return { flush };
}

/** model.safetensors.index.json as transformers writes it: metadata.total_size, sorted weight_map. */
function shardIndexJson(ckpt: Checkpoint, layout: OutputLayout): Record<string, unknown> {
  const weightMap: Record<string, string> = {};
  const entries = layout.files.flatMap((f) => f.tensors.map((t) => [t.name, f.name] as const));
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, file] of entries) weightMap[name] = file;
  return { metadata: { ...(ckpt.index?.metadata ?? {}), total_size: layout.totalBytes }, weight_map: weightMap };
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeText(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function writeText(file: string, text: string | Buffer): Promise<void> {
  await writeFileDurable(file, text);
}

/**
 * False (with a note) when `rel` in the model folder is a link out of it (the boundaries
 * listOtherFiles keeps to): its content, from anywhere on the machine, would end up in OUT.
 */
async function insideModelFolder(dir: string, rel: string, instead: string, notes: string[], options: RewriteOptions): Promise<boolean> {
  const target = await linkedOutside(dir, rel);
  if (target === undefined) return true;
  const note = printable(`${path.join(dir, rel)}: not read: a symlink to ${target}, outside the model folder; ${instead}`);
  notes.push(note);
  options.onNote?.(note);
  return false;
}

async function readJsonIfPresent(dir: string, rel: string, notes: string[], options: RewriteOptions): Promise<unknown> {
  let text: string;
  try {
    if (!(await insideModelFolder(dir, rel, 'the provenance of the source is left out', notes, options))) return undefined;
    text = await readTextLimited(path.join(dir, rel), 'provenance file', FILE_LIMITS.smallJson);
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unparsable: text.slice(0, 10000) };
  }
}

/**
 * Reads the new directory back as any input would be read (every header rule, the shard index,
 * the architecture table against the new config) and checks it holds exactly the planned tensors.
 */
async function verifyOutput(dir: string, layout: OutputLayout, plan: LayerPlan): Promise<void> {
  let ckpt: Checkpoint;
  try {
    ckpt = await openCheckpoint(dir);
  } catch (e) {
    const err = e as ShortGptError;
    throw new ShortGptError('ERR_REWRITE_VERIFY', `the rewritten checkpoint failed validation (nothing was written to the output): ${err.message}`, { cause: e });
  }
  const fail = (what: string) => {
    throw new ShortGptError('ERR_REWRITE_VERIFY', `the rewritten checkpoint does not match the plan (nothing was written to the output): ${what}`);
  };
  if (ckpt.config.numHiddenLayers !== plan.kept.length) fail(`num_hidden_layers is ${ckpt.config.numHiddenLayers}, expected ${plan.kept.length}`);
  const planned = layout.files.flatMap((f) => f.tensors.map((t) => ({ ...t, outFile: f.name })));
  if (ckpt.tensors.size !== planned.length) fail(`${ckpt.tensors.size} tensors read back, ${planned.length} written`);
  for (const t of planned) {
    const got = ckpt.tensors.get(t.name);
    if (!got) fail(`tensor '${t.name}' is missing`);
    else if (path.basename(got.file) !== t.outFile || got.dtype !== t.source.dtype || got.byteLength !== t.source.byteLength || got.shape.join(',') !== t.source.shape.join(',')) {
      fail(`tensor '${t.name}' reads back as ${got.dtype} [${got.shape.join(', ')}] in ${path.basename(got.file)}`);
    }
  }
}
