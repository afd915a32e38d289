/**
 * The benchmark: one shape through the real scoring path (EngineSession.embed, then
 * forwardLayer with Block Influence statistics for every layer), on synthetic weights, timed;
 * plus this machine's FMA peak and the GEMM alone at the layer's shapes, measured in the same
 * process so the numbers can be compared with each other.
 *
 * What the time includes: creating the session (activation buffers), the embedding lookup, and
 * for every layer reading its bytes from the (page-cached) file, converting and packing them
 * for the GEMM, the forward pass and the fused statistics. Every layer points at the same
 * synthetic tensors, but the engine does not know that: it reads and packs each layer afresh,
 * as for a real checkpoint. Not included: writing the synthetic file, the lm_head (the peers
 * skip it too), disposing the session.
 */
import * as os from 'node:os';
import type { ComputeDType } from '../checkpoint/types';
import { bindingPath, loadBinding } from '../engine/binding';
import { defaultThreads, EngineSession } from '../engine/session';
import { nativeModelSpec } from '../engine/modelSpec';
import { ShortGptError } from '../errors';
import { layerFlops, layerGemms } from './flops';
import { Prng } from './prng';
import type { BenchShape } from './shapes';
import { benchFootprint, checkBenchResources } from './resources';
import { writeSyntheticLayer } from './syntheticWeights';
import { makeTempDir, removeTempDir } from './tempFiles';

/** Options of runBench: the shape, the workload (sequences x seqLen tokens), dtype, threads and repetitions. */
export interface BenchOptions {
  shape: BenchShape;
  seqLen?: number;
  sequences?: number;
  threads?: number;
  dtype?: ComputeDType;
  /** The engine's GEMM precision: 'f32' (default) or 'bf16' (fast mode; see EngineOptions.precision). */
  precision?: 'f32' | 'bf16';
  /** Run only the first K layers and scale the layer time to all of them (quick looks at big shapes). */
  layersToRun?: number;
  /** Timed passes over the model (the median is reported), after `warmup` untimed ones. */
  runs?: number;
  warmup?: number;
  seed?: number;
  /**
   * Rows of the synthetic embedding table, and so the vocabulary the engine sees. Token ids are
   * drawn below it. The vocabulary only sizes the embedding and lm_head, neither of which is
   * timed, so a small table (default min(vocab, 4096)) saves writing up to 1 GB for nothing.
   */
  embeddingRows?: number;
  /** benchGemm iterations per (n, k) (after one warm-up); 0 skips the GEMM-alone measurement. */
  gemmIterations?: number;
  /** Skip the FMA peak measurement (tests): peakGflops is then null. */
  skipPeak?: boolean;
  /** Where the temporary directory for the synthetic weights goes (default os.tmpdir()). */
  tempParent?: string;
  signal?: AbortSignal;
  onProgress?: (p: BenchProgress) => void;
}

/** Progress of runBench. */
export interface BenchProgress {
  shape: string;
  /** 'write' (synthetic weights), 'peak', 'run' (a pass over the layers), 'gemm'. */
  phase: 'write' | 'peak' | 'run' | 'gemm';
  run?: number;
  runs?: number;
  layer?: number;
  layers?: number;
}

/** One GEMM of a layer timed alone (the engine's benchGemm). */
export interface GemmMeasurement {
  ops: string;
  m: number;
  n: number;
  k: number;
  /** Projections of the layer with this (n, k). */
  count: number;
  gflops: number;
  seconds: number;
  /** Packing W once (benchGemm's packSeconds; excluded from `seconds`). */
  packSeconds: number;
}

/** What runBench measured: seconds per layer and per pass, throughput, and each GEMM alone against the FMA peak. */
export interface BenchResult {
  shape: string;
  device: 'cpu';
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Layers of the shape, and how many were actually run (the time is scaled when fewer). */
  layers: number;
  layersRun: number;
  dtype: ComputeDType;
  /** The GEMM precision the layers ran in; `kernel` is then the BF16 kernel ('amx-bf16', 'avx512-bf16'). */
  precision: 'f32' | 'bf16';
  threads: number;
  kernel: string;
  seqLen: number;
  sequences: number;
  tokens: number;
  runs: number;
  warmup: number;
  /** Median over runs of the time through all layers (scaled to all layers when layersRun < layers). */
  seconds: number;
  secondsPerRun: number[];
  tokensPerSecond: number;
  /** FLOPs of all layers (GEMMs + causal attention; see flops.ts). */
  flops: number;
  gemmFlops: number;
  attentionFlops: number;
  gflops: number;
  /** This machine's single-precision FMA peak on `threads` threads (null when skipped). */
  peakGflops: number | null;
  fractionOfPeak: number | null;
  /** The GEMM alone at the layer's shapes, M = tokens: total GEMM FLOPs / total GEMM time. */
  gemmGflops: number | null;
  gemmFractionOfPeak: number | null;
  gemm: GemmMeasurement[];
  /**
   * How much of the run the GEMMs would take if the engine's ran as fast as benchGemm measured
   * them (gemmSeconds, all layers), and the rest (attention, reading and packing weights, norms,
   * RoPE, statistics, page faults). An estimate from separate measurements, not a profile of the
   * run: scripts/bench-profile.sh samples the run itself. benchGemm's packSeconds is not used:
   * one packing of fresh memory is dominated by page faults and varies 10-fold between calls.
   */
  estimate: { gemmSeconds: number; otherSeconds: number } | null;
  /** Median-run seconds of the session setup + embedding, and of each layer run. */
  setupSeconds: number;
  layerSeconds: number[];
  /** process.resourceUsage().maxRSS after the runs: the process's peak so far, not this shape's alone. */
  peakRssBytes: number;
  /** Bytes the engine reads per layer, and the synthetic file's size. */
  layerBytes: number;
  syntheticFileBytes: number;
  syntheticWriteSeconds: number;
  embeddingRows: number;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ShortGptError('ERR_INVALID_ARG', `bench: ${name} must be a positive integer, got ${v}`);
  return v;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function tokenSequences(count: number, length: number, vocab: number, seed: number): Int32Array[] {
  const prng = new Prng(seed);
  return Array.from({ length: count }, () => {
    const seq = new Int32Array(length);
    for (let i = 0; i < length; i++) seq[i] = prng.nextInt(vocab);
    return seq;
  });
}

interface RunTiming {
  seconds: number;
  setupSeconds: number;
  layerSeconds: number[];
}

/**
 * The time through all `layers` from the first layersRun.length layers' times. The first layer
 * also pays what a session pays once (its scratch and GEMM buffers faulted in and zeroed), so
 * with two or more layers run it counts once and the later layers' mean stands for the rest;
 * scaling every layer (the first included) by layers / layersRun charged those one-time costs
 * ~16 times for a 32-layer model run on 2 layers. A full run is the plain sum.
 */
export function scaledLayerSeconds(layerSeconds: readonly number[], layers: number): number {
  const run = layerSeconds.length;
  const total = layerSeconds.reduce((a, b) => a + b, 0);
  if (run >= layers || run < 2) return (total * layers) / Math.max(run, 1);
  return layerSeconds[0]! + ((total - layerSeconds[0]!) / (run - 1)) * (layers - 1);
}

/** Times the engine on a model shape with synthetic weights written to a temporary directory (removed afterwards): what `shortgpt-native bench` prints. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const { shape, signal, onProgress } = options;
  const c = shape.config;
  const seqLen = positiveInt('seqLen', options.seqLen ?? 512);
  const sequenceCount = positiveInt('sequences', options.sequences ?? 1);
  const threads = positiveInt('threads', options.threads ?? defaultThreads());
  const dtype = options.dtype ?? 'F32';
  const precision = options.precision ?? 'f32';
  if (precision !== 'f32' && precision !== 'bf16') throw new ShortGptError('ERR_INVALID_ARG', `bench: precision must be 'f32' or 'bf16', got '${String(precision)}'`);
  const layers = c.numHiddenLayers;
  const layersRun = Math.min(positiveInt('layersToRun', options.layersToRun ?? layers), layers);
  const runs = positiveInt('runs', options.runs ?? 1);
  const warmup = options.warmup ?? 0;
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new ShortGptError('ERR_INVALID_ARG', `bench: warmup must be a non-negative integer, got ${warmup}`);
  const seed = options.seed ?? 20240305;
  const embeddingRows = positiveInt('embeddingRows', options.embeddingRows ?? Math.min(c.vocabSize, 4096));
  const gemmIterations = options.gemmIterations ?? 3;
  const binding = loadBinding();
  if (typeof binding.measureFmaPeak !== 'function' || typeof binding.benchGemm !== 'function') {
    // An older prebuilt binary (found when build/Release is absent) lacks the benchmark exports.
    throw new ShortGptError('ERR_NATIVE_OUTDATED', `bench: the loaded addon (${bindingPath() ?? 'unknown path'}) has no measureFmaPeak/benchGemm; rebuild it: npx cmake-js compile --out build`);
  }
  const progress = (p: Omit<BenchProgress, 'shape'>): void => onProgress?.({ shape: shape.name, ...p });

  // Before the temporary directory exists: a shape too large for the disk or memory is refused
  // with the numbers, rather than found out by a full disk or the OOM killer.
  checkBenchResources(shape.name, benchFootprint(c, dtype, embeddingRows, sequenceCount * seqLen), options.tempParent ?? os.tmpdir());
  const dir = makeTempDir('shortgpt-bench-', options.tempParent);
  try {
    progress({ phase: 'write' });
    const synth = await writeSyntheticLayer(dir, c, { dtype, seed, embeddingRows, signal });
    const spec = { ...nativeModelSpec(c), vocabSize: embeddingRows };
    const sequences = tokenSequences(sequenceCount, seqLen, embeddingRows, seed + 1);
    const tokens = sequenceCount * seqLen;

    progress({ phase: 'peak' });
    const peakGflops = options.skipPeak ? null : binding.measureFmaPeak(threads);

    const timings: RunTiming[] = [];
    for (let r = 0; r < warmup + runs; r++) {
      const t0 = process.hrtime.bigint();
      const session = EngineSession.create(spec, sequences, precision === 'bf16' ? { threads, precision } : { threads });
      try {
        await session.embed(synth.embedding, { signal });
        const setupSeconds = secondsSince(t0);
        const layerSeconds: number[] = [];
        for (let l = 0; l < layersRun; l++) {
          progress({ phase: 'run', run: r, runs: warmup + runs, layer: l, layers: layersRun });
          const tl = process.hrtime.bigint();
          // The next layer is named as scoring names it, so the CPU backend's weight prefetch
          // (read and pack layer l+1 while l computes) is part of what is timed.
          const next = l + 1 < layersRun ? synth.layer : undefined;
          const stats = await session.forwardLayer(l, synth.layer, { signal, next });
          layerSeconds.push(secondsSince(tl));
          if (stats.tokens !== tokens) throw new ShortGptError('ERR_INTERNAL', `bench: layer ${l} reported ${stats.tokens} tokens, expected ${tokens}`);
        }
        if (r >= warmup) timings.push({ seconds: setupSeconds + scaledLayerSeconds(layerSeconds, layers), setupSeconds, layerSeconds });
      } finally {
        await session.dispose();
      }
    }
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;

    const gemm: GemmMeasurement[] = [];
    if (gemmIterations > 0) {
      progress({ phase: 'gemm' });
      for (const g of layerGemms(c)) {
        const m = precision === 'bf16' ? binding.benchGemm(tokens, g.n, g.k, threads, gemmIterations, 'bf16')
          : binding.benchGemm(tokens, g.n, g.k, threads, gemmIterations);
        gemm.push({ ops: g.ops, m: tokens, n: g.n, k: g.k, count: g.count, gflops: m.gflops, seconds: m.seconds, packSeconds: m.packSeconds });
      }
    }

    const secondsPerRun = timings.map((t) => t.seconds);
    const seconds = median(secondsPerRun);
    // The run closest to the median (with an even count the median is between two runs).
    const medianRun = timings.reduce((best, t) => (Math.abs(t.seconds - seconds) < Math.abs(best.seconds - seconds) ? t : best));
    const perLayer = layerFlops(c, sequences.map((s) => s.length));
    const flops = perLayer.total * layers;
    const gflops = flops / seconds / 1e9;

    let gemmGflops: number | null = null;
    let estimate: BenchResult['estimate'] = null;
    if (gemm.length > 0) {
      // FLOP-weighted: total GEMM FLOPs over the total time the GEMMs took, i.e. what the layer's
      // GEMM work as a whole runs at (an arithmetic mean of rates would overweight small GEMMs).
      const layerGemmSeconds = gemm.reduce((s, g) => s + g.count * g.seconds, 0);
      gemmGflops = perLayer.gemm / layerGemmSeconds / 1e9;
      const gemmSeconds = layerGemmSeconds * layers;
      estimate = { gemmSeconds, otherSeconds: seconds - gemmSeconds };
    }

    return {
      shape: shape.name,
      device: 'cpu',
      architecture: c.architecture,
      hiddenSize: c.hiddenSize,
      intermediateSize: c.intermediateSize,
      numHeads: c.numAttentionHeads,
      numKvHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      vocabSize: c.vocabSize,
      layers,
      layersRun,
      dtype,
      precision,
      threads,
      kernel: precision === 'bf16' ? binding.cpuInfo().bf16Kernel : binding.cpuInfo().kernel,
      seqLen,
      sequences: sequenceCount,
      tokens,
      runs,
      warmup,
      seconds,
      secondsPerRun,
      tokensPerSecond: tokens / seconds,
      flops,
      gemmFlops: perLayer.gemm * layers,
      attentionFlops: perLayer.attention * layers,
      gflops,
      peakGflops,
      fractionOfPeak: peakGflops === null ? null : gflops / peakGflops,
      gemmGflops,
      gemmFractionOfPeak: gemmGflops === null || peakGflops === null ? null : gemmGflops / peakGflops,
      gemm,
      estimate,
      setupSeconds: medianRun.setupSeconds,
      layerSeconds: medianRun.layerSeconds,
      peakRssBytes,
      layerBytes: synth.layerBytes,
      syntheticFileBytes: synth.fileBytes,
      syntheticWriteSeconds: synth.seconds,
      embeddingRows,
    };
  } finally {
    removeTempDir(dir);
  }
}
