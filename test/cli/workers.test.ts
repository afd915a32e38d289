/**
 * `score --workers K` (K processes over window shards, merged in memory) against one process,
 * and the multi-GPU launcher (`--device cuda:0,1` / `cuda:all`) planned from a device list:
 * a fake probe, the fake CUDA library's own probe, and a CUDA that is not usable.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeCudaInfo } from '../../binding';
import { cpuListCount, parseDeviceList, planWorkers, workerArgv } from '../../lib/cli/workers';
import type { Parsed } from '../../lib/cli/args';
import { resetCudaProbe } from '../../lib/engine/device';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { runCli, type CliRun } from '../hostile/helpers/cliProcess';
import { repoRoot, stories260kDir, tinyStoriesText } from '../helpers/paths';

const DATA = ['--calib', tinyStoriesText, '--samples', '24', '--seq-len', '64'];

const ok = (r: CliRun): CliRun => {
  if (r.status !== 0) throw new Error(`exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

type Doc = { tokens: number; sequences: number; device: string; layers: Array<Record<string, number>>; warnings: string[] };

it('--workers 2 prints what one process prints, to 1e-12 relative', async () => {
  const one = JSON.parse(ok(await runCli(['score', stories260kDir, ...DATA, '--threads', '1', '--json', '--quiet'])).stdout) as Doc;
  const r = ok(await runCli(['score', stories260kDir, ...DATA, '--threads', '2', '--workers', '2', '--json']));
  const two = JSON.parse(r.stdout) as Doc;
  expect(r.stderr).toBe(''); // --json: nothing on stderr, as one process
  expect({ tokens: two.tokens, sequences: two.sequences, device: two.device, keys: Object.keys(two) }).toEqual({ tokens: one.tokens, sequences: one.sequences, device: 'cpu', keys: Object.keys(one) });
  one.layers.forEach((l, i) => {
    expect(two.layers[i].rank).toBe(l.rank);
    for (const k of ['bi', 'angular', 'relmag']) expect(Math.abs(two.layers[i][k] - l[k]) / Math.abs(l[k])).toBeLessThan(1e-12);
  });
  // The text table too (same code path as one process).
  const text = ok(await runCli(['score', stories260kDir, ...DATA, '--threads', '2', '--workers', '2']));
  expect(text.stdout).toMatch(/1,322 tokens in 24 sequences\nlayer\s+BI/);
  expect(text.stderr).toContain('workers: 2 processes, one shard of the windows each: worker 0 (1 thread), worker 1 (1 thread)');
});

it('a worker that fails fails the command, with its reason', async () => {
  const r = await runCli(['score', stories260kDir, '--calib', tinyStoriesText, '--samples', '1', '--seq-len', '64', '--workers', '2', '--quiet']);
  expect(r.status).toBe(1);
  // Both workers fail alike; whichever fails first is reported (and stops the other).
  expect(r.stderr).toMatch(/worker [01] .*failed \(exit 1\)[\s\S]*2 shards need at least 2 calibration windows/);
});

it('the first worker to fail stops the others at once, and its reason is the one reported', async () => {
  // A stand-in worker script: shard 0 fails at once, shard 1 would run for a minute.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-workers-fail-'));
  try {
    const entry = path.join(dir, 'fake-worker.js');
    fs.writeFileSync(entry, `if (process.argv.includes('0/2')) { process.stderr.write('shard 0: disk full\\n'); process.exit(3); }
setTimeout(() => process.exit(0), 60000);`);
    const t0 = Date.now();
    const r = await runCli(['score', stories260kDir, '--calib', tinyStoriesText, '--workers', '2', '--quiet'], { env: { SHORTGPT_CLI_ENTRY: entry }, timeoutMs: 50_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/worker 0 .*failed \(exit 3\)[\s\S]*shard 0: disk full/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 70_000);

it('usage: --workers with --tokens, with --shard, with --bootstrap, out of range', async () => {
  for (const [args, message] of [
    [['--tokens', 'x.json', '--workers', '2'], /--workers and --device cuda:LIST split calibration windows/],
    [[...DATA, '--workers', '2', '--shard', '0/2', '--partial', 'p.json'], /--workers runs its own shards/],
    [[...DATA, '--workers', '0'], /--workers/],
    [[...DATA, '--workers', '2', '--device', 'cuda'], /for several GPUs use --device cuda:0,1/],
    [[...DATA, '--device', 'cuda:0,0'], /GPU 0 is listed twice/],
    [[...DATA, '--device', 'cuda:x'], /expected cuda:all or GPU ordinals/],
    [['--calib', '-', '--workers', '2'], /cannot come from stdin \(--calib -\)/],
  ] as Array<[string[], RegExp]>) {
    const r = await runCli(['score', stories260kDir, ...args]);
    expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 2, stderr: expect.stringMatching(message) });
  }
});

/** Pids of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const state = /State:\s+(\w)/.exec(fs.readFileSync(`/proc/${d}/status`, 'utf8'))?.[1];
      if (cmd.includes(text) && state !== 'Z') pids.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the launcher stopped', () => {
  let model: string;
  let calib: string;
  beforeAll(async () => {
    // A model and data big enough that each worker scores for tens of seconds (1 thread): stopped midway.
    model = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-workers-model-'));
    await generateCheckpoint(model, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 8, seed: 3, hiddenSize: 256, intermediateSize: 768, vocabSize: 512, numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 512 });
    calib = path.join(model, 'calib.json');
    fs.writeFileSync(calib, JSON.stringify(Array.from({ length: 1024 }, (_, w) => Array.from({ length: 256 }, (_, i) => (w * 131 + i * 17) % 512))));
  });
  afterAll(() => fs.rmSync(model, { recursive: true, force: true }));

  it.each(['SIGTERM', 'SIGKILL'] as const)('by %s leaves no worker running (and, trapped, no partials behind)', async (sig) => {
    if (process.platform !== 'linux') return;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-workers-stop-'));
    try {
      let pid = 0;
      const run = runCli(['score', model, '--calib', calib, '--seq-len', '256', '--threads', '2', '--workers', '2'], { env: { TMPDIR: tmp }, onSpawn: (p) => { pid = p; } });
      await until('both workers', () => processesMentioning(tmp).length >= 2);
      process.kill(pid, sig);
      const r = await run;
      expect(r.signal ?? r.status).toBe(sig === 'SIGTERM' ? 143 : 'SIGKILL');
      // SIGTERM: the launcher stops them; SIGKILL: each notices its launcher is gone (500 ms poll).
      // Well before a worker would finish its 512 windows through 8 layers (about a minute) on its own;
      // the margin is for a loaded machine, where a worker may still be loading when its launcher dies.
      await until('the workers to exit', () => processesMentioning(tmp).length === 0, 15_000);
      if (sig === 'SIGTERM') expect(fs.readdirSync(tmp)).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

it('an unwritable --partial folder is refused before scoring', async () => {
  const r = await runCli(['score', stories260kDir, ...DATA, '--shard', '0/2', '--partial', '/nonexistent-shortgpt/p.json']);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(/ERR_OUTPUT_NOT_WRITABLE.*--partial \/nonexistent-shortgpt\/p.json: cannot write into \/nonexistent-shortgpt/) });
});

it('one worker per NUMA node runs pinned to its CPUs (taskset), with the same result', async () => {
  // A two-node topology as sysfs shows it; this machine's two CPUs split one per node.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-numa-'));
  try {
    for (const [node, cpus] of [['node0', '0'], ['node1', '1']]) {
      fs.mkdirSync(path.join(root, node));
      fs.writeFileSync(path.join(root, node, 'cpulist'), `${cpus}\n`);
    }
    const env = { SHORTGPT_NUMA_ROOT: root };
    const one = JSON.parse(ok(await runCli(['score', stories260kDir, ...DATA, '--threads', '1', '--json', '--quiet'])).stdout) as Doc;
    const r = ok(await runCli(['score', stories260kDir, ...DATA, '--workers', '2'], { env }));
    expect(r.stderr).toContain('worker 0 (1 thread, NUMA node 0: CPUs 0), worker 1 (1 thread, NUMA node 1: CPUs 1)');
    // taskset (util-linux) does the pinning; where it is missing the workers run unpinned and say so.
    const taskset = (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, 'taskset')));
    expect(r.stderr.includes('(not pinned: taskset not found)')).toBe(!taskset);
    expect(r.stdout).toContain(`${one.tokens.toLocaleString('en-US')} tokens in ${one.sequences} sequences`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

describe('planWorkers', () => {
  it('pins one worker per NUMA node when K is the node count, else splits threads unpinned', () => {
    const nodes = ['0-15,32-47', '16-31,48-63'];
    expect(planWorkers({ workers: 2, numaNodes: nodes }).workers.map((w) => [w.cpus, w.threads])).toEqual([['0-15,32-47', 32], ['16-31,48-63', 32]]);
    expect(planWorkers({ workers: 2, threads: 8, numaNodes: nodes }).workers.map((w) => w.threads)).toEqual([4, 4]);
    expect(planWorkers({ workers: 3, threads: 6, numaNodes: nodes }).workers.every((w) => w.cpus === undefined)).toBe(true);
    expect(planWorkers({ workers: 1, threads: 6, numaNodes: ['0-5'] }).workers[0].cpus).toBeUndefined();
    expect(cpuListCount('0-15,32-47')).toBe(32);
    expect(cpuListCount('3')).toBe(1);
  });

  it('splits the threads between CPU workers, each at least one', () => {
    expect(planWorkers({ workers: 3, threads: 8 }).workers.map((w) => w.threads)).toEqual([3, 3, 2]);
    expect(planWorkers({ workers: 4, threads: 2 }).workers.map((w) => w.threads)).toEqual([1, 1, 1, 1]);
    expect(planWorkers({ workers: 2, hardwareThreads: 16 }).workers.map((w) => w.threads)).toEqual([8, 8]);
    expect(planWorkers({ workers: 2, threads: 4 }).workers.every((w) => w.device === 'cpu')).toBe(true);
  });

  it('one worker per listed GPU, each seeing only its own', () => {
    const plan = planWorkers({ gpus: [0, 2, 3] });
    expect(plan.workers.map((w) => [w.device, w.env.CUDA_VISIBLE_DEVICES, w.label])).toEqual([['cuda', '0', 'GPU 0'], ['cuda', '2', 'GPU 2'], ['cuda', '3', 'GPU 3']]);
    expect(() => planWorkers({ gpus: [0, 1], workers: 3 })).toThrow(/one worker per GPU/);
  });

  it("a worker's command line carries the parent's options, its shard and device, not the launcher's", () => {
    // parseArgs gives a repeatable option's values as an array, though Parsed types values as scalars.
    const values = { calib: ['a.txt', 'b.txt'], samples: '8', workers: '2', json: true, threads: '4', device: 'cuda:0,1' } as unknown as Parsed['values'];
    const argv = workerArgv('score', { values, positionals: ['/m'] }, '1/2', '/tmp/p1.json', 'cuda', undefined);
    expect(argv).toEqual(['score', '--calib=a.txt', '--calib=b.txt', '--samples=8', '--shard', '1/2', '--partial', '/tmp/p1.json', '--quiet', '--device', 'cuda', '--', '/m']);
  });
});

describe('--device cuda:LIST', () => {
  const fakeInfo = (ordinals: number[]): NativeCudaInfo => ({
    compiled: true, usable: true, reason: '', library: 'fake',
    devices: ordinals.map((ordinal) => ({ ordinal, name: 'fake', computeCapability: '9.0', multiprocessors: 1, totalBytes: 1 })),
  });

  it('reads ordinals and cuda:all from the device list; refuses a GPU that is not there', () => {
    const probe = () => fakeInfo([0, 1, 2, 3]);
    expect(parseDeviceList('cuda:all', probe)).toEqual([0, 1, 2, 3]);
    expect(parseDeviceList('cuda:1,3', probe)).toEqual([1, 3]);
    expect(() => parseDeviceList('cuda:4', probe)).toThrow(/no GPU 4 \(this machine has GPU 0, 1, 2, 3\)/);
    for (const plain of [undefined, 'cpu', 'cuda', 'auto']) expect(parseDeviceList(plain, probe)).toBeUndefined();
  });

  it("with the fake CUDA library's probe: cuda:all is its one device", () => {
    const saved = process.env.SHORTGPT_CUDA_LIB;
    process.env.SHORTGPT_CUDA_LIB = path.join(repoRoot, 'build', 'Release', 'libfakecuda_for_tests.so');
    resetCudaProbe();
    try {
      expect(parseDeviceList('cuda:all')).toEqual([0]);
      expect(planWorkers({ gpus: parseDeviceList('cuda:all') }).workers).toHaveLength(1);
      expect(() => parseDeviceList('cuda:0,1')).toThrow(/no GPU 1/);
    } finally {
      if (saved === undefined) delete process.env.SHORTGPT_CUDA_LIB;
      else process.env.SHORTGPT_CUDA_LIB = saved;
      resetCudaProbe();
    }
  });

  it('where CUDA is not usable, cuda:0,1 is ERR_CUDA_UNAVAILABLE (exit 1) before any work', async () => {
    const r = await runCli(['score', stories260kDir, ...DATA, '--device', 'cuda:0,1'], { env: { SHORTGPT_CUDA_LIB: '/nonexistent/libshortgpt_cuda.so' } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(/ERR_CUDA_UNAVAILABLE.*--device cuda:0,1: CUDA is not usable/) });
  });
});
