/**
 * The output side's file operations: every one names the path it failed on (a bare "ENOSPC: no
 * space left on device, write" says nothing about where), and all go through the callback fs
 * API (fs.open / fs.write / fs.fsync / fs.rename), so a test preload can record or fail them in
 * one place. Durability: a file is fsynced before it is closed, a directory after entries in it
 * were created or renamed (POSIX: fsync on the file does not persist its directory entry).
 */
import * as fs from 'node:fs';
import { ShortGptError } from '../errors';

/** errno codes meaning the output's filesystem is full or will not take writes. */
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const NOT_WRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);

/**
 * A ShortGptError for a failed output operation `what` on `file`: ERR_OUTPUT_NO_SPACE for a full
 * disk or quota, ERR_OUTPUT_NOT_WRITABLE for a read-only or forbidden place, else ERR_OUTPUT_IO.
 * `op` 'read' is for reading our own files beside OUT (the lock, the journal): a forbidden read
 * is then said as one (ERR_OUTPUT_IO), not as a write. ShortGptErrors pass through unchanged.
 */
export function outputError(e: unknown, what: string, file: string, op: 'read' | 'write' = 'write'): Error {
  if (e instanceof ShortGptError) return e;
  const code = (e as { code?: unknown }).code;
  const reason = e instanceof Error ? e.message : String(e);
  if (op === 'read') {
    return new ShortGptError('ERR_OUTPUT_IO', `cannot read ${file} (${what}): ${reason}; check its permissions or choose another --out`, { cause: e });
  }
  if (typeof code === 'string' && NO_SPACE.has(code)) {
    return new ShortGptError('ERR_OUTPUT_NO_SPACE', `no space left ${what} ${file} (${code}); free some space on that filesystem or choose another --out`, { cause: e });
  }
  if (typeof code === 'string' && NOT_WRITABLE.has(code)) {
    return new ShortGptError('ERR_OUTPUT_NOT_WRITABLE', `cannot write ${file} (${what}): ${reason}; choose an --out on a writable filesystem`, { cause: e });
  }
  return new ShortGptError('ERR_OUTPUT_IO', `output I/O failed ${what} ${file}: ${reason}`, { cause: e });
}

function cb<T>(run: (done: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, v) => (err ? reject(err) : resolve(v as T))));
}

export async function openOut(file: string, flags: string, mode = 0o644): Promise<number> {
  try {
    return await cb<number>((d) => fs.open(file, flags, mode, d));
  } catch (e) {
    throw outputError(e, 'creating', file);
  }
}

export async function writeAllAt(fd: number, file: string, data: Buffer, position: number): Promise<void> {
  let done = 0;
  try {
    while (done < data.length) done += await cb<number>((d) => fs.write(fd, data, done, data.length - done, position + done, d));
  } catch (e) {
    throw outputError(e, 'writing', file);
  }
}

export async function fsyncOut(fd: number, file: string): Promise<void> {
  try {
    await cb<void>((d) => fs.fsync(fd, d));
  } catch (e) {
    throw outputError(e, 'flushing', file);
  }
}

export function closeQuietly(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/** Creates `file` (which must not exist) with `data`, flushed to disk. */
export async function writeFileDurable(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const fd = await openOut(file, 'wx', mode);
  try {
    await writeAllAt(fd, file, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
    await fsyncOut(fd, file);
  } finally {
    await closeQuietly(fd);
  }
}

/**
 * fsync of a directory, so entries created or renamed in it survive a crash. Platforms that
 * cannot open a directory for reading (Windows) or fsync one (some network filesystems: EINVAL)
 * are skipped; any other failure is an error, since the output would not be durable.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = await cb<number>((d) => fs.open(dir, 'r', d));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM' || process.platform === 'win32') return;
    throw outputError(e, 'opening the directory', dir);
  }
  try {
    await cb<void>((d) => fs.fsync(fd, d));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF') throw outputError(e, 'flushing the directory', dir);
  } finally {
    await closeQuietly(fd);
  }
}

export async function renameOut(from: string, to: string): Promise<void> {
  try {
    await cb<void>((d) => fs.rename(from, to, d));
  } catch (e) {
    throw outputError(e, `renaming ${from} to`, to);
  }
}
