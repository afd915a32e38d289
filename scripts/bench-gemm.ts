/**
 * Prints GEMM throughput at the linear-layer shapes of the benchmark models, with 1 and 2 threads,
 * next to this machine's measured FMA peak (at the kernel's vector width). A developer tool, not a
 * test: numbers depend on the machine and on what else runs on it (on a shared machine, run it
 * when it is idle; `uptime` says).
 *
 *   npm run compile:ts && node dist/scripts/bench-gemm.js [--iterations N] [--threads 1,2] [--m 512]
 *       [--peer [--python PATH]] [--rounds R] [--precision f32|bf16]
 *   SHORTGPT_NO_AVX512=1 (or SHORTGPT_NO_AVX2=1) in the environment measures the narrower kernels.
 *
 * --peer adds PyTorch's fp32 linear (MKL sgemm) at the same shapes and thread counts, through
 * scripts/matmul_peer.py in the Python given by --python (default: the conformance venv in
 * ~/.cache/shortgpt-native), and prints ours / MKL per cell. The two run interleaved: R rounds,
 * each timing every cell on both sides (which side goes first alternates by round), and each
 * side's best over all rounds is kept, so load from other processes hits both alike. For the
 * AVX2 comparison run with SHORTGPT_NO_AVX512=1 MKL_ENABLE_INSTRUCTIONS=AVX2.
 *
 * --precision bf16 times fast mode's GEMM (BF16 inputs, f32 accumulation: AMX or AVX512-BF16)
 * against PyTorch's bf16 linear (oneDNN; AMX where present); % peak is then of our own BF16 GEMM
 * at 4096^3 measured in the same run (there is no FMA-loop equivalent for the tile unit).
 *
 * Why neither GEMM reaches the FMA loop's figure (measured on a 2-core Xeon VM with AMX, issue 11):
 * that figure is the best 30 us window; sustained for 35 ms the same loop runs 4-8% slower. The
 * 6 x 32 AVX-512 micro-kernel alone, on L1-resident panels, reaches ~85% of the peak; the rest is
 * feeding it: at 512 bits every FMA needs twice the bytes per cycle from L2/L3 that the AVX2 kernel
 * does, and AVX2 reaches 71-87% of its (half as high) peak where AVX-512 reaches 55-80%. Blocking
 * sizes (KC 128-512, MC 48-512, 4-32 panels per tile), packing X into a contiguous buffer, and a
 * 12 x 32 packed-X kernel (~10% faster in L1) measured level within noise; prefetching the next
 * panel slice during the row sweep gained 5-15% on the M shapes.
 *
 * Shapes: M = 512 tokens; (N, K) of q/o, k/v, gate/up and down projections of
 * S (SmolLM-135M: hidden 576, 3 kv heads x 64, intermediate 1536) and
 * M (Llama-3.2-1B: hidden 2048, 8 kv heads x 64, intermediate 8192) and
 * 7B (Llama-2-7B: hidden 4096, intermediate 11008).
 */
import { spawn, ChildProcessByStdio } from 'child_process';
import type { Readable, Writable } from 'stream';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';

import { loadBinding } from '../lib/engine/binding';

interface Shape {
  model: string;
  op: string;
  n: number;
  k: number;
}

const shapes: Shape[] = [
  { model: 'S', op: 'q,o', n: 576, k: 576 },
  { model: 'S', op: 'k,v', n: 192, k: 576 },
  { model: 'S', op: 'gate,up', n: 1536, k: 576 },
  { model: 'S', op: 'down', n: 576, k: 1536 },
  { model: 'M', op: 'q,o', n: 2048, k: 2048 },
  { model: 'M', op: 'k,v', n: 512, k: 2048 },
  { model: 'M', op: 'gate,up', n: 8192, k: 2048 },
  { model: 'M', op: 'down', n: 2048, k: 8192 },
  { model: '7B', op: 'q,k,v,o', n: 4096, k: 4096 },
  { model: '7B', op: 'gate,up', n: 11008, k: 4096 },
  { model: '7B', op: 'down', n: 4096, k: 11008 },
];

interface Options {
  iterations: number;
  threads: number[];
  m: number;
  peer: boolean;
  python: string;
  rounds: number;
  precision: 'f32' | 'bf16';
}

function parseArgs(argv: string[]): Options {
  const out: Options = {
    iterations: 5,
    threads: [1, 2],
    m: 512,
    peer: false,
    python: path.join(os.homedir(), '.cache', 'shortgpt-native', 'venv-torch213-tf518', 'bin', 'python'),
    rounds: 1,
    precision: 'f32',
  };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === '--peer') {
      out.peer = true;
      continue;
    }
    if (argv[i] === '--iterations' && value) out.iterations = Number(value);
    else if (argv[i] === '--threads' && value) out.threads = value.split(',').map(Number);
    else if (argv[i] === '--m' && value) out.m = Number(value);
    else if (argv[i] === '--python' && value) out.python = value;
    else if (argv[i] === '--rounds' && value) out.rounds = Number(value);
    else if (argv[i] === '--precision' && (value === 'f32' || value === 'bf16')) out.precision = value;
    else throw new Error(`bench-gemm: unknown or incomplete option '${argv[i]}'`);
    i++;
  }
  if (!Number.isInteger(out.rounds) || out.rounds < 1) throw new Error('bench-gemm: --rounds must be a positive integer');
  if (out.peer && !argv.includes('--rounds')) out.rounds = 3;  // interleaved rounds by default
  return out;
}

/** The Python peer: one request line out, one answer line back (see matmul_peer.py). */
class Peer {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly lines: AsyncIterator<string>;
  constructor(python: string) {
    const script = path.join(__dirname, '..', '..', 'scripts', 'matmul_peer.py');
    this.child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }
  async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error('bench-gemm: the PyTorch peer exited (is torch installed in --python?)');
    return r.value;
  }
  async time(m: number, n: number, k: number, threads: number, iterations: number, dtype: 'f32' | 'bf16'): Promise<number> {
    this.child.stdin.write(`${m} ${n} ${k} ${threads} ${iterations} ${dtype}\n`);
    const line = await this.next();
    if (line.startsWith('error')) throw new Error(`bench-gemm: PyTorch peer: ${line}`);
    return Number(line);
  }
  close(): void {
    this.child.stdin.end();
  }
}

async function main(): Promise<void> {
  const { iterations, threads, m, peer: withPeer, python, rounds, precision } = parseArgs(process.argv.slice(2));
  const binding = loadBinding();
  // The denominator of % peak: the FMA loop (f32), or our own BF16 GEMM at 4096^3 (bf16).
  const bf16Peak = (t: number): number => (2 * 4096 ** 3) / binding.benchGemm(4096, 4096, 4096, t, 3, 'bf16').bestSeconds / 1e9;
  const peaks = new Map(threads.map((t) => [t, precision === 'bf16' ? bf16Peak(t) : binding.measureFmaPeak(t)]));
  const kernel = binding.benchGemm(6, 16, 16, 1, 1, precision).kernel;
  const peer = withPeer ? new Peer(python) : undefined;
  const ready = peer ? await peer.next() : '';
  console.log(
    `kernel: ${kernel}; M = ${m}; best of ${iterations} runs per cell x ${rounds} round(s) (packing excluded)` +
      (peer ? `; peer: torch ${ready.split(' ')[1]} F.linear ${precision === 'bf16' ? 'bf16 (oneDNN)' : 'fp32'}, MKL_ENABLE_INSTRUCTIONS=${process.env.MKL_ENABLE_INSTRUCTIONS ?? '(unset)'}` : ''),
  );
  console.log(`${precision === 'bf16' ? 'our BF16 GEMM at 4096^3' : 'FMA peak'}: ${threads.map((t) => `${peaks.get(t)!.toFixed(1)} GFLOP/s (${t} thr)`).join(', ')}`);
  // best[shape][thread] for ours and the peer, over all rounds.
  const ours = shapes.map(() => threads.map(() => Infinity));
  const theirs = shapes.map(() => threads.map(() => Infinity));
  for (let r = 0; r < rounds; r++) {
    for (let s = 0; s < shapes.length; s++) {
      for (let t = 0; t < threads.length; t++) {
        const { n, k } = shapes[s];
        const runOurs = () => {
          ours[s][t] = Math.min(ours[s][t], binding.benchGemm(m, n, k, threads[t], iterations, precision).bestSeconds);
        };
        if (peer && r % 2 === 1) theirs[s][t] = Math.min(theirs[s][t], await peer.time(m, n, k, threads[t], iterations, precision));
        runOurs();
        if (peer && r % 2 === 0) theirs[s][t] = Math.min(theirs[s][t], await peer.time(m, n, k, threads[t], iterations, precision));
      }
    }
  }
  peer?.close();
  const head = ['shape', 'op', 'N', 'K'];
  for (const t of threads) {
    head.push(`GFLOP/s ${t}thr`, `%peak ${t}thr`);
    if (peer) head.push(`torch ${t}thr`, `%peak`, `ours/torch`);
  }
  const rows: string[][] = [head];
  shapes.forEach((s, si) => {
    const flop = 2 * m * s.n * s.k;
    const cells = threads.flatMap((t, ti) => {
      const g = flop / ours[si][ti] / 1e9;
      const out = [g.toFixed(1), `${((100 * g) / peaks.get(t)!).toFixed(0)}%`];
      if (peer) {
        const p = flop / theirs[si][ti] / 1e9;
        out.push(p.toFixed(1), `${((100 * p) / peaks.get(t)!).toFixed(0)}%`, `${(g / p).toFixed(2)}x`);
      }
      return out;
    });
    rows.push([s.model, s.op, String(s.n), String(s.k), ...cells]);
  });
  const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c])).join('  '));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
