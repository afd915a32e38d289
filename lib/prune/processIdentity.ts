/**
 * Who owns a lock or a temporary directory: a pid alone is not enough, since pids are reused
 * (a container restarts at pid 1 every time). The kernel's start time of the process
 * (/proc/PID/stat field 22, clock ticks since boot) makes pid + start time unique per boot, so a
 * later run can tell "that run is still going" from "that run was killed and its pid reused".
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface ProcessIdentity {
  pid: number;
  /** /proc/PID/stat starttime, or 0 where /proc is not available. */
  startTime: number;
  host: string;
}

/** Field 22 of /proc/PID/stat, or null when the process does not exist (or there is no /proc). */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may contain spaces or ')': split after the last one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const t = Number(fields[19]);
  return Number.isSafeInteger(t) ? t : null;
}

const hasProc = (): boolean => fs.existsSync('/proc/self/stat');

let self: ProcessIdentity | undefined;
export function currentProcess(): ProcessIdentity {
  self ??= { pid: process.pid, startTime: processStartTime(process.pid) ?? 0, host: os.hostname() };
  return self;
}

/**
 * Whether the process that wrote `id` may still be running. Unknowable cases (another host, no
 * /proc and kill(0) not permitted) count as running, so nothing of a live run is ever removed.
 */
export function isRunning(id: ProcessIdentity): boolean {
  if (id.host !== os.hostname()) return true;
  if (id.pid === process.pid && id.startTime === currentProcess().startTime) return true;
  if (hasProc()) {
    const t = processStartTime(id.pid);
    if (t === null) return false;
    return id.startTime === 0 || t === id.startTime;
  }
  try {
    process.kill(id.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
