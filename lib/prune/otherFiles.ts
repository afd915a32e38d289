/**
 * The files of a checkpoint directory that are not its weights or config: tokenizer files,
 * generation_config.json, chat templates, license, readme, subfolders. They are copied as they
 * are; weight files outside the checkpoint being rewritten are left out, since they still hold
 * the removed layers and a loader that picked them up would get the old model.
 *
 * Only regular files are copied, and symlinks to regular files inside the model folder: a model
 * folder is not trusted to stay inside itself. A link to /etc/shadow would otherwise be copied
 * into OUT, and a directory link (`loop -> .`, `up -> ..`) would be walked forever. The one
 * layout that needs links out of the folder is the Hugging Face cache: a snapshot
 * `models--org--name/snapshots/<commit>/` holds symlinks into `models--org--name/blobs/`, so for a
 * snapshot the enclosing `models--org--name` folder is the boundary. Symlinked directories are
 * never followed, and real directories are visited once each (by device and inode), so no
 * cycle (bind mounts included) is walked twice. Anything else is skipped and listed.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { isWithin } from '../util/pathWithin';
import { fileKind } from '../util/readLimited';
import { closeQuietly, fsyncOut, openOut, writeAllAt } from './durable';

export interface OtherFiles {
  /** Paths relative to the source directory, '/'-separated, sorted. */
  copy: string[];
  /** rel -> the absolute real path its content is read from (a symlink's target, checked). */
  from: Map<string, string>;
  /** Total bytes of the files to copy (for the free-space check). */
  bytes: number;
  /** Left out, with the reason (weights of another format, VCS data, special files, links out). */
  skipped: Array<{ path: string; reason: string }>;
}

/** Other serialisations of the same weights (all layers included). */
const STALE_WEIGHTS = /(\.safetensors|\.safetensors\.index\.json|\.bin\.index\.json|\.pth|\.pt|\.gguf|\.h5|\.msgpack|\.ckpt)$|^pytorch_model.*\.bin$/;

/**
 * Where symlink targets may lie: the model folder, or for a hub cache snapshot
 * (`models--org--name/snapshots/<commit>`) the whole `models--org--name` folder (its blobs/).
 */
export function linkBoundaries(srcDir: string): string[] {
  const abs = path.resolve(srcDir);
  const real = fs.realpathSync(abs);
  const roots = [real];
  for (const dir of new Set([abs, real])) {
    const snapshots = path.dirname(dir);
    const repo = path.dirname(snapshots);
    if (path.basename(snapshots) === 'snapshots' && path.basename(repo).startsWith('models--')) roots.push(fs.realpathSync(repo));
  }
  return [...new Set(roots)];
}

/**
 * Where `rel` (a file of the model folder the rewrite reads itself, such as README.md) really is,
 * when that lies outside {@link linkBoundaries}: a link out of the folder is not followed, as
 * listOtherFiles would not copy it. Undefined when it is inside, or does not exist.
 */
export async function linkedOutside(srcDir: string, rel: string): Promise<string | undefined> {
  const target = await fsp.realpath(path.join(srcDir, rel)).catch(() => null);
  if (target === null) return undefined;
  return linkBoundaries(srcDir).some((r) => isWithin(target, r)) ? undefined : target;
}

/**
 * Walks `srcDir` (without following symlinked directories), leaving out `exclude` (relative
 * paths the rewrite produces itself).
 */
export async function listOtherFiles(srcDir: string, exclude: ReadonlySet<string>): Promise<OtherFiles> {
  const copy: string[] = [];
  const from = new Map<string, string>();
  const skipped: OtherFiles['skipped'] = [];
  let bytes = 0;
  const roots = linkBoundaries(srcDir);
  const visited = new Set<string>();
  async function walk(rel: string): Promise<void> {
    const dir = path.join(srcDir, rel);
    const dst = await fsp.stat(dir);
    const id = `${dst.dev}:${dst.ino}`;
    if (visited.has(id)) {
      skipped.push({ path: rel, reason: 'a directory already visited (a cycle, e.g. a bind mount of a parent)' });
      return;
    }
    visited.add(id);
    const names = (await fsp.readdir(dir)).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      if (exclude.has(relPath)) continue;
      const abs = path.join(srcDir, relPath);
      const lst = await fsp.lstat(abs).catch(() => null);
      if (lst === null) {
        skipped.push({ path: relPath, reason: 'unreadable' });
        continue;
      }
      let st = lst;
      let real = abs;
      if (lst.isSymbolicLink()) {
        const target = await fsp.realpath(abs).catch(() => null);
        const tst = target === null ? null : await fsp.stat(target).catch(() => null);
        if (target === null || tst === null) {
          skipped.push({ path: relPath, reason: 'dangling symlink' });
          continue;
        }
        if (tst.isDirectory()) {
          skipped.push({ path: relPath, reason: `symlink to a directory (${target}); symlinked directories are not followed` });
          continue;
        }
        if (!roots.some((r) => isWithin(target, r))) {
          skipped.push({ path: relPath, reason: `symlink to ${target}, outside the model folder ${roots[roots.length - 1]}` });
          continue;
        }
        st = tst;
        real = target;
      }
      if (st.isDirectory()) {
        if (name === '.git') skipped.push({ path: relPath, reason: 'version-control data (may hold the old weights)' });
        // huggingface_hub's local_dir download records: they describe the source's weight files,
        // and would make a later download into OUT believe the old weights are in place.
        else if (relPath === '.cache') skipped.push({ path: relPath, reason: 'download cache records of the source files' });
        else await walk(relPath);
      } else if (!st.isFile()) skipped.push({ path: relPath, reason: `${fileKind(st)}, not a regular file` });
      else if (STALE_WEIGHTS.test(name)) skipped.push({ path: relPath, reason: 'weights outside the rewritten checkpoint (would still hold the removed layers)' });
      else {
        copy.push(relPath);
        from.set(relPath, real);
        bytes += st.size;
      }
    }
  }
  await walk('');
  return { copy, from, bytes, skipped };
}

const COPY_CHUNK = 1 << 20;

/**
 * Copies `from` (a path {@link listOtherFiles} checked) to `rel` inside `dstDir`: content and
 * permission bits, made owner-writable so the output can be edited or replaced later even when
 * the source is read-only. `from` is opened without following a symlink and without blocking,
 * and must still be a regular file, so a file swapped for a link or a FIFO since the listing is
 * refused rather than followed or waited on.
 */
export async function copyOtherFile(from: string, dstDir: string, rel: string): Promise<number> {
  const to = path.join(dstDir, ...rel.split('/'));
  await fsp.mkdir(path.dirname(to), { recursive: true });
  const src = await new Promise<number>((resolve, reject) =>
    fs.open(from, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
  try {
    const st = fs.fstatSync(src);
    if (!st.isFile()) throw new ShortGptError('ERR_SOURCE_CHANGED', `${from} is no longer a regular file (was it replaced during the rewrite?)`);
    const out = await openOut(to, 'wx', (st.mode & 0o777) | 0o600);
    try {
      const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(1, st.size)));
      for (let pos = 0; ; ) {
        const n = await new Promise<number>((resolve, reject) => fs.read(src, buf, 0, buf.length, pos, (err, k) => (err ? reject(err) : resolve(k))));
        if (n === 0) break;
        await writeAllAt(out, to, buf.subarray(0, n), pos);
        pos += n;
      }
      // openOut's mode is filtered by the umask; the source's bits are wanted as they are.
      await fsp.chmod(to, (st.mode & 0o777) | 0o600);
      await fsyncOut(out, to);
    } finally {
      await closeQuietly(out);
    }
    return st.size;
  } finally {
    await closeQuietly(src);
  }
}
