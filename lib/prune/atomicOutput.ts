/**
 * The output directory appears complete or not at all: everything is written into a temporary
 * directory beside OUT (same filesystem, so the final rename is atomic) and renamed into place
 * only after it has been read back. Any failure or abort removes the temporary directory.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';

/** Temporary directories in use, so a hard exit (second signal) can still remove them. */
export const liveTempDirs = new Set<string>();

/** What is at OUT now: nothing, an empty directory, or a directory that --force lets us replace. */
export type OutputVacancy = 'absent' | 'empty' | 'replace';

/** realpath of the longest existing prefix of `p`, plus the rest: where `p` really is or would be. */
function realPathOfMaybeMissing(p: string): string {
  let existing = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(existing), ...rest);
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return path.join(existing, ...rest);
      rest.unshift(path.basename(existing));
      existing = parent;
    }
  }
}

function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Refuses an OUT that is the source, lies inside it (the input is never written), or contains it
 * (replacing OUT with --force would delete the input). Symlinks are resolved first.
 */
export function checkOutputPlacement(srcDir: string, outDir: string): void {
  const src = realPathOfMaybeMissing(srcDir);
  const out = realPathOfMaybeMissing(outDir);
  if (isWithin(out, src)) {
    throw new ShortGptError('ERR_OUTPUT_IN_SOURCE', `output directory ${outDir} is ${out === src ? 'the source directory itself' : `inside the source directory ${srcDir}`}; the source is never written: choose an output outside it`);
  }
  if (isWithin(src, out)) {
    throw new ShortGptError('ERR_OUTPUT_CONTAINS_SOURCE', `output directory ${outDir} contains the source directory ${srcDir}; writing it would destroy the source: choose another output`);
  }
}

/** Decides whether OUT may be written; touches nothing. */
export async function checkOutputVacancy(outDir: string, force: boolean): Promise<OutputVacancy> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw new ShortGptError('ERR_OUTPUT_IO', `cannot examine output ${outDir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) {
    throw new ShortGptError('ERR_OUTPUT_EXISTS', `output ${outDir} exists and is not a directory; remove it or choose another --out`);
  }
  const entries = await fsp.readdir(outDir);
  if (entries.length === 0) return 'empty';
  if (!force) {
    throw new ShortGptError('ERR_OUTPUT_EXISTS', `output directory ${outDir} exists and is not empty (${entries.length} entries); pass --force to replace it once the new checkpoint is complete`);
  }
  return 'replace';
}

/**
 * `.OUT.<kind>-<pid>-<random>` beside OUT. Made with mkdir (not mkdtemp, whose 0700 would end up
 * as OUT's mode) so the final directory gets the usual umask-derived permissions.
 */
async function makeSiblingDir(outDir: string, kind: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const dir = path.join(path.dirname(outDir), `.${path.basename(outDir)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await fsp.mkdir(dir);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw e;
    }
  }
}

async function removeTree(dir: string): Promise<void> {
  // Retries cover files a just-aborted write may still be closing.
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable; some platforms cannot open a directory for fsync, which is harmless.
  try {
    const h = await fsp.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* best effort */
  }
}

/**
 * Runs `body` on a fresh temporary directory beside `outDir`, then moves the result to `outDir`
 * (replacing the old one only now, when `vacancy` is 'replace'). On any failure, including an
 * abort, the temporary directory is removed and the error rethrown; OUT is then as it was.
 */
export async function withAtomicOutput<T>(outDir: string, vacancy: OutputVacancy, body: (tempDir: string) => Promise<T>): Promise<T> {
  const parent = path.dirname(outDir);
  // Parents are created like `mkdir -p`; a failed run removes the ones it created.
  const createdParent = await fsp.mkdir(parent, { recursive: true });
  const tempDir = await makeSiblingDir(outDir, 'tmp');
  liveTempDirs.add(tempDir);
  try {
    const result = await body(tempDir);
    await commit(tempDir, outDir, vacancy);
    return result;
  } catch (e) {
    await removeTree(tempDir);
    if (createdParent !== undefined) await removeTree(createdParent);
    throw e;
  } finally {
    liveTempDirs.delete(tempDir);
  }
}

async function commit(tempDir: string, outDir: string, vacancy: OutputVacancy): Promise<void> {
  if (vacancy === 'replace') {
    const old = await makeSiblingDir(outDir, 'old');
    // Rename OUT into the holder (a fresh empty dir) so the swap is two renames, and the old
    // content is deleted only after the new one is in place.
    const held = path.join(old, 'previous');
    await fsp.rename(outDir, held);
    try {
      await fsp.rename(tempDir, outDir);
    } catch (e) {
      await fsp.rename(held, outDir).catch(() => undefined);
      await removeTree(old);
      throw new ShortGptError('ERR_OUTPUT_IO', `cannot move the new checkpoint into ${outDir}: ${(e as Error).message}`);
    }
    // The new checkpoint is in place: failing to delete the old copy must not fail the run.
    await removeTree(old).catch(() => undefined);
  } else {
    try {
      // rename(2) onto an empty directory replaces it; onto a non-empty one it fails, which
      // catches a directory filled by someone else since we checked.
      await fsp.rename(tempDir, outDir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new ShortGptError('ERR_OUTPUT_EXISTS', `output directory ${outDir} was filled while the rewrite ran; nothing was replaced`);
      }
      throw new ShortGptError('ERR_OUTPUT_IO', `cannot move the new checkpoint into ${outDir}: ${(e as Error).message}`);
    }
  }
  await fsyncDir(path.dirname(outDir));
}
