/**
 * Reading a file the user points at, bounded: every read checks first that the path is a regular
 * file (a device such as /dev/zero never ends, a FIFO with no writer blocks the open forever, a
 * directory is not data) and that its size fits what a file of its kind can reasonably be, so a
 * hostile or mistaken path gives a clear error instead of an allocation without bound or a hang.
 *
 * The check runs twice: `stat` before opening (nothing is opened that is not a regular file, so a
 * FIFO never blocks us), and `fstat` on the opened descriptor (the path could be swapped between
 * the two). The descriptor is opened with O_NONBLOCK for the same reason; on a regular file the
 * flag changes nothing. Reading stops at the limit even if the file grows meanwhile.
 *
 * Errors other than these two (ENOENT, EACCES, ...) are thrown as Node's own errors, so each
 * caller keeps its own wording for "missing" and "unreadable".
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { ShortGptError } from '../errors';
import { formatBytes } from './format';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * Size limits by kind of file, each far above any real file of that kind (config.json of the
 * largest public models is a few KB; tokenizer.json of a 256k-vocabulary model about 35 MB) and
 * far below what would exhaust memory. JSON text is held as a JS string and parsed whole, so the
 * limits also stay below V8's string limit (~512 MiB).
 */
export const FILE_LIMITS = {
  /** config.json, generation_config.json, special_tokens_map.json, a bench shape file. */
  smallJson: 16 * MiB,
  /** model.safetensors.index.json (one line per tensor; 130k tensors is ~10 MB). */
  shardIndex: 256 * MiB,
  /** tokenizer.json (vocabulary and merges). */
  tokenizer: 256 * MiB,
  /** tokenizer_config.json (may list every added token). */
  tokenizerConfig: 64 * MiB,
  /** README.md model card, read to add a note to it. */
  modelCard: 16 * MiB,
  /** A Hugging Face cache ref (refs/main: one commit hash). */
  cacheRef: 4 * KiB,
  /** `--tokens FILE` (a JSON array of id arrays) and a calibration .json file, both parsed whole. */
  wholeJsonData: 256 * MiB,
} as const;

/** A calibration file read in chunks (text, JSONL, .bin) has no size limit of its own: --max-calib-tokens stops the read. */
export const UNLIMITED = Number.POSITIVE_INFINITY;

export { GiB, MiB };

/** What a non-regular file is, in words. */
export function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function notRegular(file: string, what: string, st: fs.Stats): ShortGptError {
  // Data can come from a pipe, through stdin; model files cannot.
  const stdin = what.startsWith('calibration') ? '; to read a pipe or a stream, give - and pipe it into stdin' : '';
  return new ShortGptError('ERR_NOT_REGULAR_FILE', `${what} ${file} is ${fileKind(st)}, not a regular file${stdin}`);
}

function tooLarge(file: string, what: string, size: number, limit: number): ShortGptError {
  return new ShortGptError('ERR_FILE_TOO_LARGE', `${what} ${file} is ${formatBytes(size)}, above the ${formatBytes(limit)} limit for a ${what}`);
}

/** Checks a stat result: a regular file of at most `limit` bytes. */
export function checkRegular(file: string, what: string, st: fs.Stats, limit: number = UNLIMITED): void {
  if (!st.isFile()) throw notRegular(file, what, st);
  if (st.size > limit) throw tooLarge(file, what, st.size, limit);
}

/** stat + checkRegular: throws Node's error (ENOENT, ...) when the path cannot be stat'ed. */
export function statRegularSync(file: string, what: string, limit: number = UNLIMITED): fs.Stats {
  const st = fs.statSync(file);
  checkRegular(file, what, st, limit);
  return st;
}

export async function statRegular(file: string, what: string, limit: number = UNLIMITED): Promise<fs.Stats> {
  const st = await fsp.stat(file);
  checkRegular(file, what, st, limit);
  return st;
}

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

/** Opens a regular file for reading (checked before and after the open); the caller closes it. */
export async function openRegular(file: string, what: string, limit: number = UNLIMITED): Promise<{ handle: fsp.FileHandle; size: number }> {
  await statRegular(file, what, limit);
  const handle = await fsp.open(file, OPEN_FLAGS);
  try {
    const st = await handle.stat();
    checkRegular(file, what, st, limit);
    return { handle, size: st.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Sync twin of openRegular; returns a descriptor the caller closes. */
export function openRegularSync(file: string, what: string, limit: number = UNLIMITED): { fd: number; size: number } {
  statRegularSync(file, what, limit);
  const fd = fs.openSync(file, OPEN_FLAGS);
  try {
    const st = fs.fstatSync(fd);
    checkRegular(file, what, st, limit);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** A whole regular file of at most `limit` bytes; `what` names its kind in errors ("model config"). */
export async function readFileLimited(file: string, what: string, limit: number): Promise<Buffer> {
  const { handle, size } = await openRegular(file, what, limit);
  try {
    // One byte more than the limit tells a file that grew past it from one that did not.
    const buf = Buffer.alloc(Math.min(size, limit) + 1);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await handle.read(buf, done, buf.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done > limit) throw tooLarge(file, what, done, limit);
    return buf.subarray(0, done);
  } finally {
    await handle.close();
  }
}

export function readFileLimitedSync(file: string, what: string, limit: number): Buffer {
  const { fd, size } = openRegularSync(file, what, limit);
  try {
    const buf = Buffer.alloc(Math.min(size, limit) + 1);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break;
      done += n;
    }
    if (done > limit) throw tooLarge(file, what, done, limit);
    return buf.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}

/** readFileLimited as UTF-8 text (a BOM is kept: callers that parse JSON see it as JSON.parse would). */
export async function readTextLimited(file: string, what: string, limit: number): Promise<string> {
  return (await readFileLimited(file, what, limit)).toString('utf8');
}

export function readTextLimitedSync(file: string, what: string, limit: number): string {
  return readFileLimitedSync(file, what, limit).toString('utf8');
}
