/**
 * The files of a checkpoint directory that are not its weights or config: tokenizer files,
 * generation_config.json, chat templates, license, readme, subfolders. They are copied as they
 * are; weight files outside the checkpoint being rewritten are left out, since they still hold
 * the removed layers and a loader that picked them up would get the old model.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface OtherFiles {
  /** Paths relative to the source directory, '/'-separated, sorted. */
  copy: string[];
  /** Left out, with the reason (weights of another format, VCS data, special files). */
  skipped: Array<{ path: string; reason: string }>;
}

/** Other serialisations of the same weights (all layers included). */
const STALE_WEIGHTS = /(\.safetensors|\.safetensors\.index\.json|\.bin\.index\.json|\.pth|\.pt|\.gguf|\.h5|\.msgpack|\.ckpt)$|^pytorch_model.*\.bin$/;

/**
 * Walks `srcDir` (following symlinks, as HF cache snapshots are symlinks into a blob store),
 * leaving out `exclude` (relative paths the rewrite produces itself).
 */
export async function listOtherFiles(srcDir: string, exclude: ReadonlySet<string>): Promise<OtherFiles> {
  const copy: string[] = [];
  const skipped: OtherFiles['skipped'] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await fsp.readdir(path.join(srcDir, rel))).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      if (exclude.has(relPath)) continue;
      const st = await fsp.stat(path.join(srcDir, relPath)).catch(() => null);
      if (st === null) skipped.push({ path: relPath, reason: 'dangling symlink or unreadable' });
      else if (st.isDirectory()) {
        if (name === '.git') skipped.push({ path: relPath, reason: 'version-control data (may hold the old weights)' });
        // huggingface_hub's local_dir download records: they describe the source's weight files,
        // and would make a later download into OUT believe the old weights are in place.
        else if (relPath === '.cache') skipped.push({ path: relPath, reason: 'download cache records of the source files' });
        else await walk(relPath);
      } else if (!st.isFile()) skipped.push({ path: relPath, reason: 'not a regular file' });
      else if (STALE_WEIGHTS.test(name)) skipped.push({ path: relPath, reason: 'weights outside the rewritten checkpoint (would still hold the removed layers)' });
      else copy.push(relPath);
    }
  }
  await walk('');
  return { copy, skipped };
}

/**
 * Copies `rel` from `srcDir` into `dstDir` (content and permission bits, made owner-writable so
 * the output can be edited or replaced later even when the source is read-only).
 */
export async function copyOtherFile(srcDir: string, dstDir: string, rel: string): Promise<number> {
  const from = path.join(srcDir, ...rel.split('/'));
  const to = path.join(dstDir, ...rel.split('/'));
  await fsp.mkdir(path.dirname(to), { recursive: true });
  await fsp.copyFile(from, to, fsp.constants.COPYFILE_EXCL);
  const st = await fsp.stat(from);
  await fsp.chmod(to, (st.mode & 0o777) | 0o600);
  const h = await fsp.open(to, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
  return st.size;
}
