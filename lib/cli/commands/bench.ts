/** `shortgpt-native bench`: scoring throughput on synthetic weights, next to this machine's peak. */
import type { ComputeDType } from '../../checkpoint/types';
import { formatBenchResults } from '../../bench/format';
import { runBench, type BenchProgress, type BenchResult } from '../../bench/runner';
import { llamaShape, moeShape, overrideShape, presetShape, shapeFromConfigFile, type BenchShape, type ShapeNumbers } from '../../bench/shapes';
import { ShortGptError, UsageError } from '../../errors';
import { flag, intOption, noExtraPositionals, parseCommandLine, stringOption, type Parsed } from '../args';
import type { CliIO, Command } from '../command';
import { examplesBlock } from '../examples';
import { precisionOption } from '../engineOption';
import { signalExitCode } from '../../prune/signals';

const NAME = 'bench';

const SHAPE_FLAGS: { flag: string; field: keyof ShapeNumbers }[] = [
  { flag: 'hidden', field: 'hiddenSize' },
  { flag: 'layers', field: 'numHiddenLayers' },
  { flag: 'heads', field: 'numAttentionHeads' },
  { flag: 'kv-heads', field: 'numKeyValueHeads' },
  { flag: 'intermediate', field: 'intermediateSize' },
  { flag: 'vocab', field: 'vocabSize' },
  { flag: 'head-dim', field: 'headDim' },
];

const DTYPES: Record<string, ComputeDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** The shape numbers given on the command line (flag -> ShapeNumbers field). */
function shapeNumbers(parsed: Parsed): Partial<ShapeNumbers> {
  const out: Partial<ShapeNumbers> = {};
  for (const { flag: f, field } of SHAPE_FLAGS) {
    const v = intOption(NAME, parsed, f, { min: 1, max: 1 << 20 });
    if (v !== undefined) out[field] = v;
  }
  return out;
}

export function benchShapes(parsed: Parsed): BenchShape[] {
  const numbers = shapeNumbers(parsed);
  const given = Object.keys(numbers).length > 0;
  const configFile = stringOption(parsed, 'config');
  const shapeArg = stringOption(parsed, 'shape');
  const source = 'bench command line (--hidden, --layers, --heads, --kv-heads, --intermediate, --vocab, --head-dim)';
  try {
    if (configFile !== undefined) {
      if (shapeArg !== undefined || given) throw new UsageError(`${NAME}: --config takes the whole shape from the file; do not combine it with --shape or the shape numbers`);
      return [shapeFromConfigFile(configFile)];
    }
    const names = (shapeArg ?? (given ? 'custom' : 'S')).split(',').map((s) => s.trim());
    return names.map((name) => {
      if (name === 'S' || name === 'M') return overrideShape(presetShape(name), numbers, source);
      if (name === 'MoE') {
        if (given) throw new UsageError(`${NAME}: --shape MoE is Mixtral-8x7B's shape and takes no shape numbers; for another MoE shape use --config`);
        return moeShape();
      }
      if (name === 'custom') {
        for (const f of ['hidden', 'layers', 'heads', 'intermediate'] as const) {
          const field = SHAPE_FLAGS.find((s) => s.flag === f)!.field;
          if (numbers[field] === undefined) throw new UsageError(`${NAME}: --shape custom needs --${f} (and --hidden, --layers, --heads, --intermediate; optional --kv-heads, --vocab, --head-dim)`);
        }
        return llamaShape('custom', numbers as ShapeNumbers, 10000, source);
      }
      throw new UsageError(`${NAME}: --shape must be S, M, custom, MoE or a comma-separated list of S, M and MoE, got '${name}'`);
    });
  } catch (e) {
    // A shape the config resolver refuses (e.g. --kv-heads not dividing --heads) is a usage error.
    if (e instanceof ShortGptError && e.code === 'ERR_CONFIG' && configFile === undefined) throw new UsageError(`${NAME}: ${e.message}`);
    throw e;
  }
}

function progressWriter(io: CliIO): ((p: BenchProgress) => void) | undefined {
  if (!io.stderr.isTTY) return undefined;
  return (p) => {
    const what = p.phase === 'run' ? `run ${p.run! + 1}/${p.runs}  layer ${p.layer! + 1}/${p.layers}`
      : p.phase === 'write' ? 'writing synthetic weights' : p.phase === 'peak' ? 'measuring the FMA peak' : 'timing the GEMM alone';
    io.stderr.write(`\r${p.shape}: ${what}\x1b[K`);
  };
}

export const benchCommand: Command = {
  name: NAME,
  summary: 'measure scoring throughput on synthetic weights (tokens/s, GFLOP/s, % of FMA peak)',
  help: `${examplesBlock([
    { what: 'scoring throughput on synthetic weights shaped like SmolLM-135M; needs no model files', command: 'bench' },
    { what: 'BF16 weights, the median of 3 timed runs after one warm-up, on 4 threads', command: 'bench --dtype bf16 --runs 3 --warmup 1 --threads 4' },
    { what: "your model's shape from its config.json alone; 2 layers timed and scaled to all", command: 'bench --config ./Llama-3.1-8B/config.json --layers-to-run 2' },
    { what: 'a shape of your own', command: 'bench --shape custom --hidden 768 --layers 12 --heads 12 --intermediate 3072' },
  ])}Usage: shortgpt-native bench [--shape S|M|custom] [shape numbers | --config FILE]
                       [--seq-len 512] [--sequences 1] [--threads N] [--dtype f32|f16|bf16]
                       [--precision f32|bf16] [--layers-to-run K] [--runs 1] [--warmup 0] [--json]

Scores every layer of a model shape on synthetic weights (normal(0, 0.02), norms 1; written
for one layer to a temporary file that every layer points at, deleted afterwards), through
the same engine path as \`score\`: each layer's weights are read and packed, every token runs
through the layer, and the Block Influence statistics are computed. Needs no model files.

Prints per shape: tokens/s through all layers; GFLOP/s (every projection GEMM, 2*M*N*K, and
causal attention, 4*headDim*heads*T(T+1)/2 per sequence and layer); the machine's
single-precision FMA peak measured in the same run and the fraction of it reached; the GEMM
alone at the layer's shapes; and the process's peak resident memory.

Shapes:
  --shape S         SmolLM-135M: hidden 576, 30 layers, 9 heads, 3 kv heads, intermediate 1536, vocab 49152 (default)
  --shape M         Llama-3.2-1B: hidden 2048, 16 layers, 32 heads, 8 kv heads, intermediate 8192, vocab 128256
  --shape MoE       Mixtral-8x7B: hidden 4096, 32 layers, 32/8 heads, 8 experts of intermediate 14336, 2 per
                    token, vocab 32000 (one layer's experts: 5.6 GB of F32; use --layers-to-run 2, --dtype bf16)
  --shape S,M       both, one after the other
  --shape custom    from --hidden --layers --heads --intermediate [--kv-heads --vocab --head-dim];
                    with S or M these numbers override the preset's (the shape is then named S* or M*)
  --config FILE     a Hugging Face config.json (any supported architecture)

Options:
  --seq-len N         tokens per sequence (default 512)
  --sequences N       sequences (default 1)
  --threads N         worker threads (default: all hardware threads)
  --dtype D           weight dtype: f32 (default), f16 or bf16
  --precision P       the GEMMs: f32 (default, exact) or bf16 (fast mode on AMX or AVX512-BF16;
                      scores within about 1e-3 of f32; an error where the CPU has neither);
                      the GEMM-alone figures are then the BF16 GEMM's
  --layers-to-run K   run only the first K layers and scale the time to all (quick looks): the
                      first layer (which also pays the session's one-time buffer set-up) once,
                      the mean of the others for the rest
  --runs N            timed passes; the median is reported (default 1)
  --warmup N          untimed passes first (default 0)
  --gemm-iterations N iterations of each GEMM-alone measurement (default 3; 0 skips it)
  --seed N            seed of the synthetic weights and tokens (default 20240305)
  --json              one JSON document on stdout:
                      {"results": [{"shape", "device", "tokensPerSecond", "gflops", "peakGflops",
                                    "gemmGflops", "peakRssBytes", ...}]}
  -h, --help`,
  async run(argv, io) {
    const parsed = parseCommandLine(NAME, argv, {
      shape: { type: 'string' },
      config: { type: 'string' },
      ...Object.fromEntries(SHAPE_FLAGS.map((s) => [s.flag, { type: 'string' as const }])),
      'seq-len': { type: 'string' },
      sequences: { type: 'string' },
      threads: { type: 'string' },
      dtype: { type: 'string' },
      precision: { type: 'string' },
      'layers-to-run': { type: 'string' },
      runs: { type: 'string' },
      warmup: { type: 'string' },
      'gemm-iterations': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    });
    noExtraPositionals(NAME, parsed, 0);
    const shapes = benchShapes(parsed);
    const dtypeArg = stringOption(parsed, 'dtype') ?? 'f32';
    const dtype = DTYPES[dtypeArg.toLowerCase()];
    if (!dtype) throw new UsageError(`${NAME}: --dtype must be f32, f16 or bf16, got '${dtypeArg}'`);
    const common = {
      seqLen: intOption(NAME, parsed, 'seq-len', { min: 1, max: 1 << 20 }),
      sequences: intOption(NAME, parsed, 'sequences', { min: 1, max: 1 << 20 }),
      threads: intOption(NAME, parsed, 'threads', { min: 1, max: 1024 }),
      layersToRun: intOption(NAME, parsed, 'layers-to-run', { min: 1 }),
      runs: intOption(NAME, parsed, 'runs', { min: 1, max: 1000 }),
      warmup: intOption(NAME, parsed, 'warmup', { min: 0, max: 1000 }),
      gemmIterations: intOption(NAME, parsed, 'gemm-iterations', { min: 0, max: 1000 }),
      seed: intOption(NAME, parsed, 'seed', { min: 0, max: 0xffffffff }),
      dtype,
      precision: precisionOption(NAME, parsed),
    };

    // Ctrl-C or SIGTERM: stop at the next chunk or layer (the engine cancels between batches),
    // delete the synthetic file, exit 130 (143 for SIGTERM). A second signal exits at once; the
    // temp-file exit hook still cleans up. Without a SIGTERM handler Node would die at once and
    // leave the file (gigabytes for a large shape) in the temporary directory.
    const controller = new AbortController();
    let received: NodeJS.Signals | undefined;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (controller.signal.aborted) process.exit(signalExitCode(received ?? sig));
      received = sig;
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const onProgress = progressWriter(io);
    const results: BenchResult[] = [];
    try {
      for (const shape of shapes) {
        results.push(await runBench({ shape, ...common, signal: controller.signal, onProgress }));
        if (onProgress) io.stderr.write('\r\x1b[K');
      }
    } catch (e) {
      if (controller.signal.aborted && e instanceof ShortGptError && e.code === 'ERR_ABORTED') {
        io.stderr.write(`\n${NAME}: interrupted; temporary files removed\n`);
        return signalExitCode(received ?? 'SIGINT');
      }
      throw e;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    io.stdout.write(flag(parsed, 'json') ? `${JSON.stringify({ results }, null, 2)}\n` : formatBenchResults(results));
    return 0;
  },
};
