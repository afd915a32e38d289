/**
 * One writer per output directory. A lock file `.OUT.lock` beside OUT names its holder (pid,
 * process start time, host); it is made by hard-linking a fully written file into place, so it
 * appears complete or not at all, and a second link fails with EEXIST. A run that finds the lock
 * of a live holder stops with ERR_OUTPUT_LOCKED, naming OUT and the holder. A lock whose holder is
 * gone (kill -9, power loss) is stale and is taken over; takeovers are serialised by a second,
 * short-lived lock, so two runs can never both remove a stale lock and both believe they hold it.
 *
 * Whoever holds the lock then owns every temporary directory of OUT, which is why the
 * clean-up of an interrupted run (lib/prune/outputRecovery.ts) runs only under it.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { outputError } from './durable';
import { currentProcess, isRunning, type ProcessIdentity } from './processIdentity';
import { recoverOutput } from './outputRecovery';
import { readTextLimitedSync } from '../util/readLimited';

/** A lock holds one line of JSON (pid, start time, host, time): far below this. */
const LOCK_LIMIT = 64 * 1024;

export interface OutputLock {
  outDir: string;
  lockPath: string;
  /** What start-up found and did about an earlier run's leftovers, one line each. */
  notes: string[];
  /** Removes the lock (and, after a failed run, the parent directories this run created when empty). */
  release(failed: boolean): void;
}

/** Locks held by this process, so a hard exit (second signal) can still release them. */
export const liveLocks = new Set<OutputLock>();

export const lockPathOf = (outDir: string): string => path.join(path.dirname(outDir), `.${path.basename(outDir)}.lock`);

interface LockContent extends ProcessIdentity {
  createdAt: string;
}

function readLock(file: string): { text: string; holder: LockContent | null } | null {
  let text: string;
  try {
    // A FIFO put at the lock's name would block a plain read forever (a signal cannot stop a
    // main thread blocked in open()); only a small regular file is read.
    text = readTextLimitedSync(file, 'output lock file', LOCK_LIMIT);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw outputError(e, 'reading the lock', file, 'read');
  }
  try {
    const v = JSON.parse(text) as LockContent;
    if (Number.isSafeInteger(v.pid) && Number.isSafeInteger(v.startTime) && typeof v.host === 'string') return { text, holder: v };
  } catch {
    /* unparsable: written by something else, or damaged; treated as stale below */
  }
  return { text, holder: null };
}

/** Places `content` at `file` atomically; false when `file` exists. */
function linkInPlace(file: string, content: string): boolean {
  const staging = `${file}.${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    fs.writeFileSync(staging, content, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    throw outputError(e, 'creating the lock', staging);
  }
  try {
    fs.linkSync(staging, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw outputError(e, 'creating the lock', file);
    // No hard links on this filesystem: an exclusive create, written at once (tiny, one write).
    try {
      fs.writeFileSync(file, content, { flag: 'wx', mode: 0o644 });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw outputError(e2, 'creating the lock', file);
    }
  } finally {
    try {
      fs.unlinkSync(staging);
    } catch {
      /* already gone */
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describeHolder(h: LockContent): string {
  return `pid ${h.pid}${h.host !== currentProcess().host ? ` on host ${h.host}` : ''}, since ${h.createdAt}`;
}

/**
 * Removes the stale lock whose text was `staleText`, if it is still that one, holding the
 * takeover lock meanwhile. Returns false when another run is taking it over right now.
 */
async function takeOver(lockPath: string, staleText: string, content: string): Promise<boolean> {
  const takeover = `${lockPath}.takeover`;
  for (let attempt = 0; attempt < 100; attempt++) {
    if (linkInPlace(takeover, content)) {
      try {
        if (readLock(lockPath)?.text === staleText) fs.rmSync(lockPath, { force: true });
      } finally {
        fs.rmSync(takeover, { force: true });
      }
      return true;
    }
    const other = readLock(takeover);
    // A takeover lasts microseconds; one whose holder died mid-way is removed.
    if (other !== null && (other.holder === null || !isRunning(other.holder))) fs.rmSync(takeover, { force: true });
    else await sleep(20);
  }
  return false;
}

/**
 * Takes the lock of `outDir`, creating its parent directories like `mkdir -p` (removed again by
 * a failed run's release), then cleans up or completes what an earlier, killed run left beside
 * OUT. Throws ERR_OUTPUT_LOCKED while another live run holds it.
 */
export async function acquireOutputLock(outDir: string): Promise<OutputLock> {
  const parent = path.dirname(outDir);
  let createdParent: string | undefined;
  try {
    createdParent = fs.mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw outputError(e, 'creating the output\'s parent directory', parent);
  }
  const lockPath = lockPathOf(outDir);
  const me = currentProcess();
  const content = `${JSON.stringify({ ...me, createdAt: new Date().toISOString() } satisfies LockContent)}\n`;
  const removeCreatedParents = () => {
    if (createdParent === undefined) return;
    // Innermost first; only empty ones (another run may have put something there since).
    for (let d = parent; d.length >= createdParent.length && d !== path.dirname(d); d = path.dirname(d)) {
      try {
        fs.rmdirSync(d);
      } catch {
        break;
      }
    }
  };
  try {
    for (let attempt = 0; ; attempt++) {
      if (linkInPlace(lockPath, content)) break;
      const found = readLock(lockPath);
      if (found === null) continue; // released meanwhile
      if (found.holder !== null && found.holder.host !== me.host) {
        // Another host's lock (a shared filesystem): whether that run still goes cannot be told from here.
        throw new ShortGptError(
          'ERR_OUTPUT_LOCKED',
          `output ${outDir} is locked by a shortgpt-native run on host ${found.holder.host} (pid ${found.holder.pid}, since ${found.holder.createdAt}); this host cannot tell whether it is still running: ` +
            `wait for it or choose another --out (if no such run exists, remove the lock file ${lockPath})`,
        );
      }
      if (found.holder !== null && isRunning(found.holder)) {
        throw new ShortGptError(
          'ERR_OUTPUT_LOCKED',
          `output ${outDir} is being written by another shortgpt-native run (${describeHolder(found.holder)}); wait for it to finish or choose another --out ` +
            `(if no such run exists, remove the lock file ${lockPath})`,
        );
      }
      if (attempt >= 20 || !(await takeOver(lockPath, found.text, content))) {
        throw new ShortGptError('ERR_OUTPUT_LOCKED', `output ${outDir}: could not take over the stale lock ${lockPath}; another run is taking it over; try again`);
      }
    }
  } catch (e) {
    removeCreatedParents();
    throw e;
  }
  const lock: OutputLock = {
    outDir,
    lockPath,
    notes: [],
    release(failed) {
      liveLocks.delete(lock);
      if (readLock(lockPath)?.text === content) fs.rmSync(lockPath, { force: true });
      if (failed) removeCreatedParents();
    },
  };
  liveLocks.add(lock);
  try {
    lock.notes.push(...(await recoverOutput(outDir)));
  } catch (e) {
    lock.release(true);
    throw e;
  }
  return lock;
}
