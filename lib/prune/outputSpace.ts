/**
 * Free space for the output, checked before any work: a full disk found after an hour of
 * scoring wastes the hour. The new checkpoint is written beside OUT in full before an old OUT
 * (with --force) is deleted, so the old copy's space does not count.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { formatBytes } from '../util/format';
import { outputError } from './durable';

/** Bytes available to this user on the filesystem holding `dir`, or null where statfs is unsupported. */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    // Looked up at call time, so a test preload can report a nearly full disk.
    const st = await fsp.statfs(dir);
    return st.bavail * st.bsize;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSYS' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return null;
    throw outputError(e, 'examining the free space of', dir);
  }
}

/**
 * Refuses with ERR_OUTPUT_NO_SPACE when the filesystem of OUT's parent has less than `bytes`
 * free. `what` says what the number is (exact, or a lower bound before the layers are chosen).
 */
export async function checkOutputSpace(outDir: string, bytes: number, what: string): Promise<void> {
  const parent = path.dirname(outDir);
  const free = await freeBytes(parent);
  if (free === null || free >= bytes) return;
  throw new ShortGptError(
    'ERR_OUTPUT_NO_SPACE',
    `not enough space for ${outDir}: ${what} ${formatBytes(bytes)} (${bytes} bytes), but ${parent} has ${formatBytes(free)} free; free some space or choose another --out (nothing was written)`,
  );
}
