/**
 * SIGINT/SIGTERM during a rewrite, for the CLI: the first signal aborts the rewrite (it stops at
 * the next chunk and removes its temporary directory); a second one, for a run that does not
 * stop, removes the temporary directories at once, releases OUT's lock and exits. (kill -9
 * cannot be trapped: what it leaves, the next run recognises and removes.) Handlers exist only while
 * `trapInterrupts` is active, so the default behaviour returns afterwards.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { liveTempDirs } from './atomicOutput';
import { liveLocks } from './outputLock';

export interface InterruptTrap {
  signal: AbortSignal;
  /** The first signal received, if any. */
  received(): NodeJS.Signals | undefined;
  dispose(): void;
}

const TRAPPED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** The conventional exit status of a process stopped by `sig` (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (os.constants.signals[sig] ?? 0);
}

export function trapInterrupts(): InterruptTrap {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (first === undefined) {
      first = sig;
      controller.abort(new Error(`interrupted by ${sig}`));
      return;
    }
    for (const dir of liveTempDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        /* exiting anyway; nothing more can be done */
      }
    }
    // The new copy was just deleted, so a --force swap cut short here is rolled back by the next
    // run from its journal: the previous OUT is put back (lib/prune/outputRecovery.ts). The lock
    // must not outlive us either way.
    for (const lock of liveLocks) {
      try {
        lock.release(true);
      } catch {
        /* a stale lock is taken over by the next run */
      }
    }
    process.exit(signalExitCode(first));
  };
  for (const s of TRAPPED) process.on(s, onSignal);
  return {
    signal: controller.signal,
    received: () => first,
    dispose: () => {
      for (const s of TRAPPED) process.off(s, onSignal);
    },
  };
}
