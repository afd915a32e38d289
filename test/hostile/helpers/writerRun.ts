/**
 * Spawns the CLI (from the TypeScript sources) with the writer fault preload, and compares
 * output directories by content, for the writer fault tests.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const pruneHelpers = path.join(__dirname, '..', '..', 'prune', 'helpers');
export const faultPreload = path.join(__dirname, 'writerFaults.js');
export const slowWritesPreload = path.join(pruneHelpers, 'slowWrites.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  preload?: string[];
  /** Called with each stderr chunk and the child, e.g. to act once a run is under way. */
  onStderr?: (all: string, child: import('node:child_process').ChildProcess) => void;
}

export function runCli(args: string[], opts: SpawnOptions = {}): Promise<CliRun> {
  const preloads = (opts.preload ?? [faultPreload]).flatMap((p) => ['-r', p]);
  const child = spawn(process.execPath, [...preloads, '-r', path.join(pruneHelpers, 'tsRequire.js'), path.join(pruneHelpers, 'cli.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
  child.stderr.on('data', (d: Buffer) => {
    stderr += String(d);
    opts.onStderr?.(stderr, child);
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid ?? -1 })));
}

/** rel path -> sha256 of every file under `dir`; shortgpt.json is left out (it holds the time of the run). */
export function contentOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else if (r !== 'shortgpt.json') out[r] = createHash('sha256').update(fs.readFileSync(path.join(d, e.name))).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

/** Everything in `parent` but `keep`: temporaries, old copies, locks, journals. */
export function strays(parent: string, keep: string[]): string[] {
  return fs.readdirSync(parent).filter((n) => !keep.includes(n)).sort();
}

/** A fresh folder `root/name` with OUT (`out`) inside it, holding a copy of `oldOut` when given. */
export function placeOut(root: string, name: string, oldOut?: string): { parent: string; out: string } {
  const parent = path.join(root, name);
  fs.mkdirSync(parent);
  const out = path.join(parent, 'out');
  if (oldOut !== undefined) fs.cpSync(oldOut, out, { recursive: true });
  return { parent, out };
}
