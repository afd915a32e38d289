/**
 * Prints GEMM throughput at the linear-layer shapes of the benchmark models, with 1 and 2 threads,
 * next to this machine's measured FMA peak (at the kernel's vector width). A developer tool, not a
 * test: numbers depend on the machine and on what else runs on it (on a shared machine, run it
 * when it is idle; `uptime` says).
 *
 *   npm run compile:ts && node dist/scripts/bench-gemm.js [--iterations N] [--threads 1,2] [--m 512]
 *   SHORTGPT_NO_AVX512=1 (or SHORTGPT_NO_AVX2=1) in the environment measures the narrower kernels.
 *
 * Shapes: M = 512 tokens; (N, K) of q/o, k/v, gate/up and down projections of
 * S (SmolLM-135M: hidden 576, 3 kv heads x 64, intermediate 1536) and
 * M (Llama-3.2-1B: hidden 2048, 8 kv heads x 64, intermediate 8192).
 */
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
];

function parseArgs(argv: string[]): { iterations: number; threads: number[]; m: number } {
  const out = { iterations: 5, threads: [1, 2], m: 512 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === '--iterations' && value) out.iterations = Number(value);
    else if (argv[i] === '--threads' && value) out.threads = value.split(',').map(Number);
    else if (argv[i] === '--m' && value) out.m = Number(value);
    else throw new Error(`bench-gemm: unknown or incomplete option '${argv[i]}'`);
    i++;
  }
  return out;
}

function main(): void {
  const { iterations, threads, m } = parseArgs(process.argv.slice(2));
  const binding = loadBinding();
  const peaks = new Map(threads.map((t) => [t, binding.measureFmaPeak(t)]));
  const kernel = binding.benchGemm(6, 16, 16, 1, 1).kernel;
  console.log(`kernel: ${kernel}; M = ${m}; best of ${iterations} runs per cell (packing excluded)`);
  console.log(`FMA peak: ${threads.map((t) => `${peaks.get(t)!.toFixed(1)} GFLOP/s (${t} thr)`).join(', ')}`);
  const head = ['shape', 'op', 'N', 'K', ...threads.flatMap((t) => [`GFLOP/s ${t}thr`, `%peak ${t}thr`])];
  const rows: string[][] = [head];
  for (const s of shapes) {
    const cells = threads.flatMap((t) => {
      const r = binding.benchGemm(m, s.n, s.k, t, iterations);
      const gflops = (2 * m * s.n * s.k) / r.bestSeconds / 1e9;
      return [gflops.toFixed(1), `${((100 * gflops) / peaks.get(t)!).toFixed(0)}%`];
    });
    rows.push([s.model, s.op, String(s.n), String(s.k), ...cells]);
  }
  const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c])).join('  '));
}

main();
