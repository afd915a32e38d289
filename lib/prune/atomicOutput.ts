/**
 * The output directory appears complete or not at all: everything is written into a temporary
 * directory beside OUT (same filesystem, so the final rename is atomic) and renamed into place
 * only after it has been read back and flushed. Any failure or abort removes the temporary
 * directory; a kill -9 leaves it, named so the next run recognises and removes it
 * (lib/prune/outputRecovery.ts).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { isWithin } from '../util/pathWithin';
import { fsyncDir, outputError, renameOut, writeFileDurable } from './durable';
import { journalPathOf, tempName, type SwapJournal } from './outputRecovery';

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

async function removeTree(dir: string): Promise<void> {
  // Retries cover files a just-aborted write may still be closing.
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

/** fsync of every directory under `dir` (deepest first) and of `dir`: their entries must be durable before the rename publishes them. */
async function fsyncTree(dir: string): Promise<void> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await fsyncTree(path.join(dir, e.name));
  await fsyncDir(dir);
}

/**
 * Runs `body` on a fresh temporary directory beside `outDir`, then moves the result to `outDir`
 * (replacing the old one only now, when `vacancy` is 'replace'). On any failure, including an
 * abort, the temporary directory is removed and the error rethrown; OUT is then as it was. The
 * caller holds OUT's lock (lib/prune/outputLock.ts), which also created OUT's parent.
 */
export async function withAtomicOutput<T>(outDir: string, vacancy: OutputVacancy, body: (tempDir: string) => Promise<T>): Promise<T> {
  // mkdir (not mkdtemp, whose 0700 would end up as OUT's mode), so OUT gets the umask's permissions.
  const tempDir = tempName(outDir, 'tmp');
  try {
    await fsp.mkdir(tempDir);
  } catch (e) {
    throw outputError(e, 'creating the temporary directory', tempDir);
  }
  liveTempDirs.add(tempDir);
  const swap = { keepTemp: false };
  try {
    const result = await body(tempDir);
    await fsyncTree(tempDir);
    await commit(tempDir, outDir, vacancy, swap);
    return result;
  } catch (e) {
    // A swap stuck half-way keeps the new copy: the journal names it for the next run.
    if (!swap.keepTemp) await removeTree(tempDir);
    throw e;
  } finally {
    liveTempDirs.delete(tempDir);
  }
}

/**
 * --force: OUT is moved aside and the new copy moved in, with the journal written first so a
 * run killed between the renames is completed by the next one (lib/prune/outputRecovery.ts);
 * the old copy is deleted only once the new one is in place. Every rename is followed by an
 * fsync of the parent, so the order survives a crash too.
 */
async function commit(tempDir: string, outDir: string, vacancy: OutputVacancy, swap: { keepTemp: boolean }): Promise<void> {
  const parent = path.dirname(outDir);
  if (vacancy === 'replace') {
    const old = tempName(outDir, 'old');
    const journal = journalPathOf(outDir);
    const entry: SwapJournal = { tmp: path.basename(tempDir), old: path.basename(old) };
    try {
      await writeFileDurable(journal, `${JSON.stringify(entry)}\n`);
      await fsyncDir(parent);
    } catch (e) {
      // No rename has happened: a torn journal would only be noise for the next run.
      await fsp.rm(journal, { force: true });
      throw e;
    }
    try {
      await renameOut(outDir, old);
    } catch (e) {
      await fsp.rm(journal, { force: true });
      throw e;
    }
    await fsyncDir(parent);
    try {
      await renameOut(tempDir, outDir);
    } catch (e) {
      try {
        await renameOut(old, outDir);
      } catch (restoreError) {
        // Neither copy is at OUT: both stay, with the journal that names them, so the next run
        // to this OUT finishes the replacement (lib/prune/outputRecovery.ts); nothing is deleted.
        swap.keepTemp = true;
        const first = e instanceof Error ? e.message : String(e);
        throw new ShortGptError(
          (e as { code?: string }).code ?? 'ERR_OUTPUT_IO',
          `${first}; putting the previous copy back failed too (${(restoreError as Error).message}): the previous ${outDir} is at ${old} and the new one at ${tempDir}; ` +
            `the next run to this --out finishes the replacement from the journal ${journal}`,
          { cause: e },
        );
      }
      await fsp.rm(journal, { force: true });
      throw e;
    }
    await fsyncDir(parent);
    // The new checkpoint is in place: the swap is done once the journal is gone.
    await fsp.rm(journal, { force: true });
    await fsyncDir(parent);
    // Failing to delete the old copy must not fail the run (the next run removes it).
    await removeTree(old).catch(() => undefined);
    return;
  }
  try {
    // rename(2) onto an empty directory replaces it; onto a non-empty one it fails, which
    // catches a directory filled by someone else since we checked.
    await new Promise<void>((resolve, reject) => fs.rename(tempDir, outDir, (err) => (err ? reject(err) : resolve())));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new ShortGptError('ERR_OUTPUT_EXISTS', `output directory ${outDir} was filled while the rewrite ran; nothing was replaced`);
    }
    throw outputError(e, `moving the new checkpoint from ${tempDir} into`, outDir);
  }
  await fsyncDir(parent);
}
