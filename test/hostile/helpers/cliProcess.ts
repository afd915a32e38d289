/**
 * The CLI as a real child process (test/prune/helpers/cli.js runs the TypeScript sources), with
 * the bounds a hostile-input test needs: a V8 heap cap (a run that used to grow without bound
 * dies with "heap out of memory" instead of passing), a peak-RSS watchdog reading
 * /proc/PID/status VmHWM, and a wall-clock limit.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stories260kDir } from '../../helpers/paths';

const CLI = path.join(__dirname, '..', '..', 'prune', 'helpers', 'cli.js');

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Highest VmHWM seen (peak resident set, bytes); 0 where /proc is not readable. */
  peakRssBytes: number;
}

export interface CliRunOptions {
  /** --max-old-space-size in MiB (default 256). */
  heapMiB?: number;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Called once with the child's pid, e.g. to signal it. */
  onSpawn?: (pid: number) => void;
}

/** The process's peak resident set size so far (VmHWM), in bytes; 0 once it is gone. */
export function vmHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function runCli(args: string[], options: CliRunOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${options.heapMiB ?? 256}`, CLI, ...args], {
      env: { ...process.env, ...options.env, SHORTGPT_DEBUG: '', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const watch = setInterval(() => { peak = Math.max(peak, vmHwm(child.pid!)); }, 20);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    if (options.onSpawn) options.onSpawn(child.pid!);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearInterval(watch);
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, peakRssBytes: peak });
    });
  });
}

/** A copy of the bundled stories260k checkpoint in `dir` with config.json fields replaced (undefined deletes). */
export function modelCopy(dir: string, edits: Record<string, unknown> = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(stories260kDir)) fs.copyFileSync(path.join(stories260kDir, f), path.join(dir, f));
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(edits)) {
    if (v === undefined) delete cfg[k];
    else cfg[k] = v;
  }
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  return dir;
}

/** Every file under `dir` (relative paths), or [] when it does not exist. */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** `model`'s model.safetensors rewritten with `extra` header entries appended (their bytes zero, after the existing data). */
export function withExtraTensors(model: string, extra: Array<{ name: string; shape: number[]; bytes: number }>): void {
  const file = path.join(model, 'model.safetensors');
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  const data = buf.subarray(8 + headerLen);
  let end = data.length;
  for (const e of extra) {
    header[e.name] = { dtype: 'F32', shape: e.shape, data_offsets: [end, end + e.bytes] };
    end += e.bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data, Buffer.alloc(end - data.length)]));
}
