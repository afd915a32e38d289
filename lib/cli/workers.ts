/**
 * `score --workers K` and `score --device cuda:0,1,...|cuda:all`: one command, several worker
 * processes, each scoring one shard of the windows (`score --shard i/K --partial tmp/i.json`),
 * then merged in memory in shard order, so the output equals one process's to rounding.
 *
 * Processes, not threads: each worker has its own engine session and memory, so on a
 * multi-socket machine each can stay on one NUMA node (run it under numactl, or let the OS
 * place it), and on a multi-GPU node each owns one GPU. CPU threads are split between the
 * workers (--threads T, default all hardware threads: T/K each). GPU workers get
 * CUDA_VISIBLE_DEVICES=<ordinal>, so each sees its GPU as device 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeCudaDevice, NativeCudaInfo } from '../../binding';
import { probeCuda } from '../engine/device';
import { ShortGptError, UsageError } from '../errors';
import { mergePartials, type MergedScores } from '../scoring/merge';
import { readPartialFile } from '../scoring/mergeFiles';
import { signalExitCode } from '../prune/signals';
import { intOption, stringOption, type Parsed } from './args';
import type { CliIO } from './command';

/** Most workers one command starts. */
export const MAX_WORKERS = 256;

export interface WorkerPlan {
  /** One entry per worker: its shard index is its position. */
  workers: Array<{ device: 'cpu' | 'cuda'; threads?: number; env: Record<string, string>; label: string; /** taskset -c list: the worker's NUMA node's CPUs. */ cpus?: string }>;
}

/** CPUs in a Linux cpulist ("0-15,32-47" -> 32). */
export function cpuListCount(list: string): number {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return 0;
    n += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return n;
}

/**
 * Each NUMA node's CPUs (/sys/devices/system/node/nodeN/cpulist; SHORTGPT_NUMA_ROOT names another
 * folder, for tests), nodes with none left out; [] where unknown.
 */
export function numaNodes(root = process.env.SHORTGPT_NUMA_ROOT ?? '/sys/devices/system/node'): string[] {
  try {
    return fs.readdirSync(root)
      .filter((d) => /^node\d+$/.test(d))
      .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
      .map((d) => fs.readFileSync(path.join(root, d, 'cpulist'), 'utf8').trim())
      .filter((l) => cpuListCount(l) > 0);
  } catch {
    return [];
  }
}

/** The path of `taskset` (util-linux), or undefined. */
function findTaskset(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const f = path.join(dir, 'taskset');
    if (dir && fs.existsSync(f)) return f;
  }
  return undefined;
}

/** `cuda:0,1,3` -> [0, 1, 3]; `cuda:all` -> every usable device; `cpu`/`cuda`/`auto`/undefined -> undefined (not a list). */
export function parseDeviceList(value: string | undefined, probe: () => NativeCudaInfo = probeCuda): number[] | undefined {
  if (value === undefined || !value.startsWith('cuda:')) return undefined;
  const rest = value.slice('cuda:'.length);
  if (rest === 'all') {
    const info = probe();
    if (!info.usable) throw new ShortGptError('ERR_CUDA_UNAVAILABLE', `--device ${value}: CUDA is not usable: ${info.reason}`);
    const devices: NativeCudaDevice[] = info.devices ?? [];
    if (devices.length === 0) throw new ShortGptError('ERR_CUDA_UNAVAILABLE', `--device ${value}: CUDA reports no devices`);
    return devices.map((d) => d.ordinal);
  }
  if (!/^\d{1,4}(,\d{1,4})*$/.test(rest)) throw new UsageError(`--device ${value}: expected cuda:all or GPU ordinals, e.g. cuda:0,1,2,3`);
  const list = rest.split(',').map(Number);
  const dup = list.find((d, i) => list.indexOf(d) !== i);
  if (dup !== undefined) throw new UsageError(`--device ${value}: GPU ${dup} is listed twice`);
  const info = probe();
  if (!info.usable) throw new ShortGptError('ERR_CUDA_UNAVAILABLE', `--device ${value}: CUDA is not usable: ${info.reason}`);
  const known = new Set((info.devices ?? []).map((d) => d.ordinal));
  const absent = list.filter((d) => !known.has(d));
  if (absent.length > 0) throw new UsageError(`--device ${value}: no GPU ${absent.join(', ')} (this machine has ${known.size ? `GPU ${[...known].join(', ')}` : 'none'})`);
  return list;
}

/** Who runs which shard: K CPU workers sharing `threads`, or one worker per listed GPU. */
export function planWorkers(opts: { workers?: number; gpus?: number[]; threads?: number; hardwareThreads?: number; numaNodes?: string[] }): WorkerPlan {
  if (opts.gpus !== undefined) {
    if (opts.workers !== undefined && opts.workers !== opts.gpus.length) throw new UsageError(`--workers ${opts.workers} disagrees with --device listing ${opts.gpus.length} GPUs (one worker per GPU)`);
    return { workers: opts.gpus.map((g) => ({ device: 'cuda' as const, env: { CUDA_VISIBLE_DEVICES: String(g) }, label: `GPU ${g}` })) };
  }
  const k = opts.workers ?? 1;
  const nodes = opts.numaNodes ?? [];
  // One worker per NUMA node (K = the node count, 2 or more): each pinned to its node's CPUs, so
  // its threads and the memory they first touch stay on one socket.
  if (nodes.length >= 2 && nodes.length === k) {
    return {
      workers: nodes.map((cpus, i) => {
        const threads = opts.threads !== undefined ? Math.max(1, Math.floor(opts.threads / k) + (i < opts.threads % k ? 1 : 0)) : cpuListCount(cpus);
        return { device: 'cpu' as const, threads, env: {}, cpus, label: `worker ${i} (${threads} thread${threads > 1 ? 's' : ''}, NUMA node ${i}: CPUs ${cpus})` };
      }),
    };
  }
  const total = opts.threads ?? opts.hardwareThreads ?? os.availableParallelism();
  // Threads split as evenly as they go; every worker gets at least one.
  return {
    workers: Array.from({ length: k }, (_, i) => {
      const threads = Math.max(1, Math.floor(total / k) + (i < total % k ? 1 : 0));
      return { device: 'cpu' as const, threads, env: {}, label: `worker ${i} (${threads} thread${threads > 1 ? 's' : ''})` };
    }),
  };
}

/** Options a worker must not inherit: the launcher sets them per worker, or prints itself. */
const LAUNCHER_ONLY = new Set(['workers', 'device', 'threads', 'json', 'quiet', 'shard', 'shards', 'partial']);

/** The worker's command line: the parent's values (not its spelling), minus the launcher's own options. */
export function workerArgv(command: string, parsed: Parsed, shard: string, partial: string, device: 'cpu' | 'cuda', threads: number | undefined): string[] {
  const argv = [command];
  for (const [k, v] of Object.entries(parsed.values)) {
    if (LAUNCHER_ONLY.has(k) || v === undefined || v === false) continue;
    if (v === true) argv.push(`--${k}`);
    else for (const one of Array.isArray(v) ? (v as string[]) : [v]) argv.push(`--${k}=${one}`);
  }
  argv.push('--shard', shard, '--partial', partial, '--quiet', '--device', device);
  if (threads !== undefined) argv.push('--threads', String(threads));
  argv.push('--', ...parsed.positionals);
  return argv;
}

/**
 * The script workers run: the one that started this process (bin/shortgpt-native.js, or a
 * test's CLI), unless SHORTGPT_CLI_ENTRY names another.
 */
function workerEntry(): string {
  const entry = process.env.SHORTGPT_CLI_ENTRY ?? process.argv[1];
  if (!entry || !fs.existsSync(entry)) throw new ShortGptError('ERR_WORKERS', `--workers: cannot find the shortgpt-native script to start workers with (${entry ?? 'process.argv[1] unset'}); set SHORTGPT_CLI_ENTRY to bin/shortgpt-native.js`);
  return entry;
}

/** The environment variable that tells a worker its launcher's pid (it exits when the launcher is gone). */
export const WORKER_PARENT_ENV = 'SHORTGPT_WORKER_PARENT';

function runWorker(entry: string, argv: string[], env: Record<string, string>, label: string, children: Set<ChildProcess>, cpus?: string, tasksetPath?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const command = [process.execPath, ...process.execArgv, entry, ...argv];
    const pinned = cpus !== undefined ? [tasksetPath as string, '-c', cpus, ...command] : command;
    const child = spawn(pinned[0], pinned.slice(1), { env: { ...process.env, ...env, [WORKER_PARENT_ENV]: String(process.pid) }, stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
    });
    child.on('error', (e) => reject(new ShortGptError('ERR_WORKERS', `${label}: could not start: ${e.message}`)));
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code === 0) return resolve();
      const why = stderr.trim().split('\n').filter(Boolean).slice(-3).join('\n  ');
      reject(new ShortGptError('ERR_WORKER_FAILED', `${label} failed (${signal ? `signal ${signal}` : `exit ${code}`})${why ? `:\n  ${why}` : ''}`));
    });
  });
}

/** Runs every worker of `plan` at once and merges their partials in shard order. */
export async function runWorkers(command: string, parsed: Parsed, plan: WorkerPlan, model: string, io: CliIO, quiet: boolean): Promise<MergedScores> {
  const entry = workerEntry();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-workers-'));
  const k = plan.workers.length;
  const children = new Set<ChildProcess>();
  // Pinning needs taskset; without it the workers run unpinned, and the line below says so.
  const tasksetPath = plan.workers.some((w) => w.cpus !== undefined) ? findTaskset() : undefined;
  // Ctrl-C or SIGTERM: stop every worker and remove the partials before exiting, as score does.
  const onSignal = (sig: NodeJS.Signals): void => {
    for (const c of children) c.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(signalExitCode(sig));
  };
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, onSignal);
  try {
    if (!quiet) io.stderr.write(`workers: ${k} processes, one shard of the windows each: ${plan.workers.map((w) => w.label).join(', ')}${plan.workers.some((w) => w.cpus) && !tasksetPath ? ' (not pinned: taskset not found)' : ''}\n`);
    const files = plan.workers.map((_, i) => path.join(dir, `shard-${i}.json`));
    // The first failure stops the other workers (their shards cannot be merged without it) rather
    // than letting them score on for hours; it is the one reported, not a stopped worker's SIGTERM.
    let first: { reason: unknown } | undefined;
    const runs = plan.workers.map((w, i) => runWorker(entry, workerArgv(command, parsed, `${i}/${k}`, files[i], w.device, w.threads), w.env, w.label, children, tasksetPath && w.cpus, tasksetPath)
      .catch((e: unknown) => {
        if (first === undefined) {
          first = { reason: e };
          for (const c of children) c.kill('SIGTERM');
        }
        throw e;
      }));
    await Promise.allSettled(runs);
    if (first !== undefined) throw first.reason;
    // (allSettled: every worker has exited before the first failure is reported, none is left running.)
    return mergePartials(files.map((file, i) => ({ file: `worker ${i}`, partial: readPartialFile(file) })), model);
  } finally {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * In a worker: exit when the launcher is gone (killed with SIGKILL, say), instead of scoring on
 * for nobody. Linux re-parents an orphan, so a changed parent pid means the launcher died.
 */
export function exitWithLauncher(env: NodeJS.ProcessEnv = process.env): void {
  const parent = Number(env[WORKER_PARENT_ENV]);
  if (!Number.isSafeInteger(parent) || parent <= 0) return;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();
}

/** --workers K / --device cuda:list from the command line: undefined when neither asks for workers. */
export function workerRequest(command: string, parsed: Parsed): WorkerPlan | undefined {
  const workers = intOption(command, parsed, 'workers', { min: 1, max: MAX_WORKERS });
  let gpus: number[] | undefined;
  try {
    gpus = parseDeviceList(stringOption(parsed, 'device'));
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${command}: ${e.message}`);
    throw e;
  }
  if (workers === undefined && gpus === undefined) return undefined;
  const calib = parsed.values.calib as unknown as string[] | string | undefined;
  if ((Array.isArray(calib) ? calib : [calib]).includes('-')) throw new UsageError(`${command}: every worker reads the calibration data itself, so it cannot come from stdin (--calib -): save it to a file first`);
  const threads = intOption(command, parsed, 'threads', { min: 1, max: 1024 });
  if (gpus === undefined && stringOption(parsed, 'device') === 'cuda') throw new UsageError(`${command}: --workers is for the CPU; for several GPUs use --device cuda:0,1,... or cuda:all`);
  try {
    return planWorkers({ workers, gpus, threads, numaNodes: numaNodes() });
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${command}: ${e.message}`);
    throw e;
  }
}
