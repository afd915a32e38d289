/**
 * What a killed run leaves beside OUT, and how the next run (holding OUT's lock, so no other run
 * is writing) cleans it up.
 *
 * Names: `.OUT.tmp-PID-START-RAND` (the new checkpoint being written) and `.OUT.old-PID-START-RAND`
 * (the previous OUT, moved aside by --force), PID and START being the writer's pid and process
 * start time (lib/prune/processIdentity.ts), so a directory of a process that is gone is told
 * apart from one of a live process with a reused pid.
 *
 * A --force replacement writes the journal `.OUT.swap` (the two names) before its first rename
 * and removes it only once the new OUT is in place, so at every instant one of these holds:
 *   no journal                 -> OUT is whatever it was (old, or absent); temporaries are junk;
 *   journal, .tmp exists       -> the new copy is complete (the journal is written after the
 *                                 read-back check): the swap is finished now (roll forward);
 *   journal, no .tmp, OUT there -> the swap completed; only the old copy remains to delete;
 *   journal, no .tmp, no OUT    -> cannot happen by the protocol; the old copy is put back.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, outputError, renameOut } from './durable';
import { currentProcess, isRunning } from './processIdentity';
import { readTextLimitedSync } from '../util/readLimited';

/** A journal holds two base names as one line of JSON: far below this. */
const JOURNAL_LIMIT = 64 * 1024;

export type TempKind = 'tmp' | 'old';

/** A fresh sibling name of `outDir` of kind `kind` (not created). */
export function tempName(outDir: string, kind: TempKind): string {
  const me = currentProcess();
  return path.join(path.dirname(outDir), `.${path.basename(outDir)}.${kind}-${me.pid}-${me.startTime}-${randomBytes(4).toString('hex')}`);
}

export const journalPathOf = (outDir: string): string => path.join(path.dirname(outDir), `.${path.basename(outDir)}.swap`);

export interface SwapJournal {
  /** Base names, beside OUT. */
  tmp: string;
  old: string;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const exists = (p: string): boolean => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
  } catch (e) {
    throw outputError(e, 'removing the leftover', p);
  }
}

function readJournal(file: string): SwapJournal | null | undefined {
  let text: string;
  try {
    // Only a small regular file is read: a FIFO at the journal's name would block forever.
    text = readTextLimitedSync(file, 'swap journal', JOURNAL_LIMIT);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw outputError(e, 'reading the swap journal', file, 'read');
  }
  try {
    const j = JSON.parse(text) as SwapJournal;
    const ok = (n: unknown) => typeof n === 'string' && n !== '' && !n.includes('/') && !n.includes('\\') && n.startsWith('.');
    return ok(j.tmp) && ok(j.old) ? { tmp: j.tmp, old: j.old } : null;
  } catch {
    return null;
  }
}

/**
 * Finishes or undoes an interrupted replacement of `outDir` and removes the temporaries of runs
 * that are gone. Call only while holding OUT's lock. Returns one note per thing done.
 */
export async function recoverOutput(outDir: string): Promise<string[]> {
  const parent = path.dirname(outDir);
  const base = path.basename(outDir);
  const notes: string[] = [];
  const journalPath = journalPathOf(outDir);
  const journal = readJournal(journalPath);
  if (journal === null) {
    // Torn while being written: the renames come after it is complete, so none happened.
    fs.rmSync(journalPath, { force: true });
    notes.push(`removed the incomplete swap journal ${journalPath} of an interrupted run (${outDir} was not touched)`);
  } else if (journal !== undefined) {
    const tmp = path.join(parent, journal.tmp);
    const old = path.join(parent, journal.old);
    if (exists(tmp)) {
      if (exists(outDir)) {
        await renameOut(outDir, old);
        await fsyncDir(parent);
      }
      await renameOut(tmp, outDir);
      notes.push(`finished the interrupted --force replacement of ${outDir}: the new checkpoint (complete and checked before the swap began) is now in place`);
    } else if (!exists(outDir) && exists(old)) {
      await renameOut(old, outDir);
      notes.push(`restored ${outDir} from ${old}, where an interrupted --force replacement had moved it`);
    }
    await fsyncDir(parent);
    if (exists(old)) removeTree(old);
    fs.rmSync(journalPath, { force: true });
    await fsyncDir(parent);
  }

  const ours = new RegExp(`^\\.${escapeRe(base)}\\.(tmp|old)-(\\d+)-(\\d+)-[0-9a-f]{8}$`);
  // Names of the versions before 0.2 (pid only): gone when the pid no longer runs.
  const legacy = new RegExp(`^\\.${escapeRe(base)}\\.(tmp|old)-(\\d+)-[0-9a-f]{8}$`);
  const me = currentProcess();
  let entries: string[];
  try {
    entries = fs.readdirSync(parent).sort();
  } catch (e) {
    throw outputError(e, 'listing', parent, 'read');
  }
  // Legacy first: an old-format --force killed between its renames left OUT absent and the old
  // copy at .old-*/previous, with no way to know whether the .tmp was complete: restore the old.
  for (const name of entries) {
    const m = legacy.exec(name);
    if (!m || isRunning({ pid: Number(m[2]), startTime: 0, host: me.host })) continue;
    const p = path.join(parent, name);
    if (m[1] === 'old' && !exists(outDir) && exists(path.join(p, 'previous'))) {
      await renameOut(path.join(p, 'previous'), outDir);
      notes.push(`restored ${outDir} from ${p}/previous, left by an interrupted --force replacement`);
    }
  }
  // The lock's staging files (lib/prune/outputLock.ts), left when a run died while placing it.
  const staging = new RegExp(`^\\.${escapeRe(base)}\\.lock(?:\\.takeover)?\\.(\\d+)-[0-9a-f]{8}$`);
  for (const name of entries) {
    const m = staging.exec(name);
    if (m && !isRunning({ pid: Number(m[1]), startTime: 0, host: me.host })) fs.rmSync(path.join(parent, name), { force: true });
  }
  for (const name of entries) {
    const m = ours.exec(name) ?? legacy.exec(name);
    if (!m) continue;
    const owner = { pid: Number(m[2]), startTime: m.length === 4 ? Number(m[3]) : 0, host: me.host };
    if (owner.pid === me.pid && owner.startTime === me.startTime) continue;
    const p = path.join(parent, name);
    if (isRunning(owner)) {
      // A legacy name records no start time: a live pid there may be a reuse, which cannot be told.
      notes.push(owner.startTime === 0
        ? `left ${p} alone: a process with its maker's pid ${owner.pid} is running (the name records no start time, so it may be another process); remove it by hand if no run is writing ${outDir}`
        : `left ${p} alone: process ${owner.pid} that made it is still running`);
      continue;
    }
    removeTree(p);
    notes.push(`removed ${p}, left by an interrupted run (pid ${owner.pid}, no longer running)`);
  }
  return notes;
}
