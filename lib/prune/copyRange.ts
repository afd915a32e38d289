/**
 * Moves byte ranges from one open file to another. First choice: the kernel copies them
 * (copy_file_range through the addon), which is as fast as a plain file copy because no byte
 * passes through user space. Otherwise (another OS, files on different filesystems, no addon,
 * or SHORTGPT_COPY=readwrite): bounded chunks through two buffers, reading chunk k+1 while
 * writing chunk k. Either way memory does not grow with the model, and the abort signal is
 * checked between chunks.
 */
import * as fs from 'node:fs';
import type { NativeBinding } from '../../binding';
import { loadBinding } from '../engine/binding';
import { ShortGptError } from '../errors';

export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Per kernel copy call: large enough to cost nothing, small enough for prompt aborts and progress. */
export const KERNEL_COPY_CHUNK_BYTES = 64 * 1024 * 1024;
/** errno names meaning "copy_file_range cannot serve these two files": use read/write instead. */
const KERNEL_COPY_UNSUPPORTED = new Set(['ENOSYS', 'EXDEV', 'EINVAL', 'EOPNOTSUPP']);

function kernelCopier(): NativeBinding['copyFileRange'] | undefined {
  if (process.env.SHORTGPT_COPY === 'readwrite') return undefined;
  try {
    return loadBinding().copyFileRange;
  } catch {
    return undefined; // no addon: the rewrite still works, through read/write
  }
}

/** One contiguous run: `length` bytes at `srcOffset` of the source go to `dstOffset`. */
export interface CopySpan {
  srcFd: number;
  /** For error messages. */
  srcPath: string;
  srcOffset: number;
  dstOffset: number;
  length: number;
}

function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  // fs.read is looked up at call time (not captured) so a test preload can slow it down.
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function writeAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Plain fds (not FileHandles, which close themselves on garbage collection). */
export function openFd(file: string, flags: string, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export function abortedError(signal: AbortSignal): ShortGptError {
  const reason = signal.reason instanceof Error ? signal.reason.message : signal.reason !== undefined ? String(signal.reason) : 'aborted';
  return new ShortGptError('ERR_ABORTED', `rewrite aborted: ${reason}`);
}

export class RangeCopier {
  private readonly bufs: [Buffer, Buffer];
  private kernelCopy = kernelCopier();

  constructor(readonly chunkBytes = DEFAULT_CHUNK_BYTES) {
    this.bufs = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  }

  /** How the bytes moved so far: 'kernel' (copy_file_range) or 'readwrite'. */
  get method(): 'kernel' | 'readwrite' {
    return this.kernelCopy ? 'kernel' : 'readwrite';
  }

  /**
   * Copies with copy_file_range; returns how many bytes it moved before the files turned out not
   * to support it (0 at once on an unsupported pair), so the caller finishes with read/write.
   */
  private async copyInKernel(copyFileRange: NativeBinding['copyFileRange'], span: CopySpan, dstFd: number, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<number> {
    let done = 0;
    while (done < span.length) {
      if (signal?.aborted) throw abortedError(signal);
      const n = Math.min(KERNEL_COPY_CHUNK_BYTES, span.length - done);
      try {
        await copyFileRange(span.srcFd, span.srcOffset + done, dstFd, span.dstOffset + done, n);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (typeof code === 'string' && KERNEL_COPY_UNSUPPORTED.has(code)) {
          this.kernelCopy = undefined;
          return done;
        }
        if (code === 'ENODATA') {
          throw new ShortGptError(
            'ERR_SAFETENSORS_TRUNCATED',
            `${span.srcPath}: file ended before byte ${span.srcOffset + span.length} while copying (was the file changed during the rewrite?)`,
          );
        }
        throw e;
      }
      done += n;
      onBytes?.(n);
    }
    return done;
  }

  /** Fills bufs[slot] with `length` bytes from `position`; a short file is an error naming it. */
  private async readFull(span: CopySpan, slot: 0 | 1, length: number, position: number): Promise<void> {
    const buf = this.bufs[slot];
    let got = 0;
    while (got < length) {
      const n = await readAt(span.srcFd, buf.subarray(got), length - got, position + got);
      if (n === 0) {
        throw new ShortGptError(
          'ERR_SAFETENSORS_TRUNCATED',
          `${span.srcPath}: file ended at byte ${position + got} while copying; expected data up to byte ${span.srcOffset + span.length} (was the file changed during the rewrite?)`,
        );
      }
      got += n;
    }
  }

  private async writeFull(dstFd: number, slot: 0 | 1, length: number, position: number): Promise<void> {
    const buf = this.bufs[slot];
    let put = 0;
    while (put < length) put += await writeAt(dstFd, buf.subarray(put), length - put, position + put);
  }

  /** Copies one span into `dstFd`, checking `signal` between chunks; `onBytes` gets each chunk's size. */
  async copy(whole: CopySpan, dstFd: number, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
    let span = whole;
    if (this.kernelCopy) {
      const moved = await this.copyInKernel(this.kernelCopy, whole, dstFd, signal, onBytes);
      if (moved === whole.length) return;
      span = { ...whole, srcOffset: whole.srcOffset + moved, dstOffset: whole.dstOffset + moved, length: whole.length - moved };
    }
    const chunks = Math.ceil(span.length / this.chunkBytes);
    if (chunks === 0) return;
    const sizeOf = (k: number) => Math.min(this.chunkBytes, span.length - k * this.chunkBytes);
    let pending: Promise<void> = this.readFull(span, 0, sizeOf(0), span.srcOffset);
    for (let k = 0; k < chunks; k++) {
      const slot = (k % 2) as 0 | 1;
      await pending;
      if (signal?.aborted) throw abortedError(signal);
      if (k + 1 < chunks) {
        pending = this.readFull(span, ((k + 1) % 2) as 0 | 1, sizeOf(k + 1), span.srcOffset + (k + 1) * this.chunkBytes);
        // If the write below throws, this read must not become an unhandled rejection.
        pending.catch(() => undefined);
      }
      await this.writeFull(dstFd, slot, sizeOf(k), span.dstOffset + k * this.chunkBytes);
      onBytes?.(sizeOf(k));
    }
  }
}

/**
 * Merges tensors that sit back to back both in their source file and in the output into one
 * span, so a run of kept tensors is a single sequential copy rather than one per tensor.
 */
export function coalesceSpans(spans: readonly CopySpan[]): CopySpan[] {
  const out: CopySpan[] = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && last.srcFd === s.srcFd && last.srcOffset + last.length === s.srcOffset && last.dstOffset + last.length === s.dstOffset) {
      last.length += s.length;
    } else {
      out.push({ ...s });
    }
  }
  return out;
}
