/**
 * Temporary directories that must not outlive the process: removed by their owner when done,
 * and otherwise by a process 'exit' hook (Ctrl-C handled by the CLI, an uncaught error, a test
 * runner exiting), so an interrupted benchmark leaves no hundreds of megabytes in /tmp.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const live = new Set<string>();
let hooked = false;

function removeAll(): void {
  for (const dir of live) fs.rmSync(dir, { recursive: true, force: true });
  live.clear();
}

export function makeTempDir(prefix: string, parent: string = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  live.add(dir);
  if (!hooked) {
    process.once('exit', removeAll);
    hooked = true;
  }
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  live.delete(dir);
}
