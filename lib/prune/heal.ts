/**
 * Training-free healing (issue 13; ReplaceMe, Shopkhoev et al. 2025, arXiv 2505.02819, the
 * least-squares variant). For a removed block of layers [s, e) with s >= 1, over every
 * calibration token of the ORIGINAL model:
 *   M   = layer s-1's MLP output (down_proj's output, before the residual add),
 *   h_s = the residual stream after layer s-1, h_e = the residual stream after layer e-1,
 *   Y   = h_e - h_s + M  (what layer s-1's MLP would have to output for the next kept layer
 *                         to receive h_e with the block gone),
 *   T   = argmin ||M T - Y||^2 + alpha ||T||^2 = (MᵀM + alpha I)⁻¹ MᵀY.
 * Then down_proj(s-1) := Tᵀ W_down ([out, in] layout): the block's effect is folded into one
 * tensor of the layer before the cut, so the checkpoint keeps its standard names and shapes.
 *
 * When the statistics are gathered: after the layers are chosen, by a second streamed pass over
 * the calibration windows that stops at the last cut's layer. The cut depends on scores from the
 * whole scoring pass, and gathering for every candidate s during it would need two
 * hidden x hidden double sums per layer (1 GiB per layer at hidden 8192). The second pass costs
 * one partial forward; with --remove-layers the cut is known, but the same pass is used (one code
 * path). Memory: the two hidden x hidden double sums per block, plus, per block open at a time
 * (between layer s-1 and layer e-1), M and h_s ([tokens of one --batch-tokens batch, hidden] f32
 * each), plus the engine's usual activations and one layer.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { layerTensors } from '../checkpoint/checkpoint';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../checkpoint/halfFloat';
import { decodeToF32, readTensorBytes } from '../checkpoint/tensorData';
import type { Checkpoint, TensorInfo } from '../checkpoint/types';
import { loadBinding } from '../engine/binding';
import { embeddingRef, layerTensorRefs, nativeModelSpec, nextLayerRefs } from '../engine/modelSpec';
import type { EngineOptions } from '../engine/engineOptions';
import { defaultThreads, EngineSession } from '../engine/session';
import { ShortGptError } from '../errors';
import { inWindowTerms, WorkTracker, type Batch, type WorkProgress } from './strategies/passes';

/** The healing methods: 'lstsq' (ReplaceMe's least squares); 'none' for plain deletion. */
export type HealMethod = 'none' | 'lstsq';

export function parseHealMethod(v: unknown): HealMethod {
  if (v === undefined || v === 'none') return 'none';
  if (v === 'lstsq') return 'lstsq';
  throw new ShortGptError('ERR_HEAL_OPTIONS', `--heal must be 'lstsq' (least-squares patch folded into down_proj) or 'none', got '${String(v)}'`);
}

export function parseHealRidge(v: unknown): number {
  if (v === undefined) return 0;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
    throw new ShortGptError('ERR_HEAL_OPTIONS', `--heal-ridge must be a finite number >= 0 (the ridge alpha added to MᵀM's diagonal), got '${String(v)}'`);
  }
  return n;
}

/** A contiguous removed block [start, end); `patchedLayer` = start - 1, or null when start is 0. */
export interface HealBlock {
  start: number;
  end: number;
  patchedLayer: number | null;
}

/** Contiguous runs of the removed layers, ascending. */
export function removedBlocks(removed: readonly number[]): HealBlock[] {
  const sorted = [...new Set(removed)].sort((a, b) => a - b);
  const blocks: HealBlock[] = [];
  for (const l of sorted) {
    const last = blocks[blocks.length - 1];
    if (last && last.end === l) last.end = l + 1;
    else blocks.push({ start: l, end: l + 1, patchedLayer: l >= 1 ? l - 1 : null });
  }
  return blocks;
}

/** One block's sums over the calibration tokens (double, [hidden, hidden] row-major). */
export interface HealSums {
  block: HealBlock;
  /** MᵀM. */
  G: Float64Array;
  /** MᵀY, Y = h_e - h_s + M. */
  B: Float64Array;
  /** ||Y||², for the fit's relative residual. */
  yy: number;
  tokens: number;
}

export interface HealPassOptions {
  engine?: EngineOptions;
  signal?: AbortSignal;
  /** Progress of the capture pass, as phase 'heal' (token-layers: every window through layers 0..last removed). */
  onProgress?: (p: WorkProgress) => void;
}

/** Layers the heal pass runs for the cut `removed`: up to its last removed layer, or none when no block has a layer before it. */
export function healPassLayers(removed: readonly number[]): number {
  const todo = removedBlocks(removed).filter((b) => b.patchedLayer !== null);
  return todo.length === 0 ? 0 : Math.max(...todo.map((b) => b.end - 1)) + 1;
}

/** Refuses --heal where the engine cannot capture the MLP output (before any work). */
export function checkHealDevice(engine: EngineOptions | undefined): void {
  if (engine?.device === 'cuda') {
    throw new ShortGptError('ERR_HEAL_OPTIONS', '--heal lstsq needs --device cpu: the CUDA backend does not capture MLP outputs');
  }
}

/**
 * Refuses --heal, before any work, for architectures whose MLP output is not added to the
 * residual stream unchanged (the fit assumes h += down_proj(...)); the engine refuses the same
 * (cpu/arch_ops.cc healUnsupportedReason), but only once the heal pass has started.
 */
export function checkHealArchitecture(ckpt: Checkpoint): void {
  const spec = nativeModelSpec(ckpt.config);
  const why =
    (spec.residualMultiplier ?? 1) !== 1 ? "residual_multiplier != 1 (Granite) scales the MLP output before the residual add"
      : spec.postNorms ? "OLMo 2's post_feedforward_layernorm normalises the MLP output before the residual add"
        : spec.gemmaNorms ? "Gemma's post_feedforward_layernorm normalises the MLP output before the residual add"
          : (spec.numExperts ?? 0) > 0 ? "a mixture-of-experts MLP's output is a routed sum of experts, not one down_proj's output"
            : null;
  if (why !== null) {
    throw new ShortGptError('ERR_HEAL_OPTIONS', `--heal lstsq cannot patch ${ckpt.dir} (${ckpt.config.architecture}): ${why}, and the fit assumes it is added unchanged`);
  }
}

/**
 * The sums for every patchable block (start >= 1), from the original model, batch by batch: each
 * batch runs layers 0 .. (last block's end - 1) and nothing after.
 */
export async function gatherHealSums(ckpt: Checkpoint, batches: readonly Batch[], blocks: readonly HealBlock[], opts: HealPassOptions = {}): Promise<HealSums[]> {
  checkHealDevice(opts.engine);
  const H = ckpt.config.hiddenSize;
  const todo = blocks.filter((b) => b.patchedLayer !== null);
  const sums: HealSums[] = todo.map((block) => ({ block, G: new Float64Array(H * H), B: new Float64Array(H * H), yy: 0, tokens: 0 }));
  if (todo.length === 0) return sums;
  const lastLayer = Math.max(...todo.map((b) => b.end - 1));
  const { signal } = opts;
  const tracker = new WorkTracker(batches, lastLayer + 1, { phase: 'heal', layers: ckpt.config.numHiddenLayers }, opts.onProgress);
  tracker.start(0);
  for (let bi = 0; bi < batches.length; bi++) {
    const session = EngineSession.create(nativeModelSpec(ckpt.config), batches[bi], opts.engine ?? {});
    try {
      await session.embed(embeddingRef(ckpt), { signal });
      // Per block: M and h_s of this batch, from layer s-1 until layer e-1 has run.
      const open = new Map<number, { M: Float32Array; hS: Float32Array }>();
      for (let l = 0; l <= lastLayer; l++) {
        const capture = todo.some((b) => b.patchedLayer === l);
        if (capture) session.captureMlp(true);
        const cb = tracker.callback(bi, l, l);
        await session.forwardLayer(l, layerTensorRefs(ckpt, l), { signal, next: l < lastLayer ? nextLayerRefs(ckpt, l) : undefined, onProgress: cb && ((p) => cb(p.sequencesDone)) });
        if (capture) {
          const M = session.mlpOutput();
          session.captureMlp(false);
          const hS = session.snapshot();
          todo.forEach((b, i) => { if (b.patchedLayer === l) open.set(i, { M, hS }); });
        }
        for (const [i, b] of todo.entries()) {
          if (b.end - 1 !== l) continue;
          const { M, hS } = open.get(i)!;
          const s = sums[i];
          await session.accumulateHealSums(M, hS, s.G, s.B, { signal });
          const hE = session.snapshot();
          let yy = 0;
          for (let k = 0; k < hE.length; k++) {
            const y = hE[k] - hS[k] + M[k];
            yy += y * y;
          }
          s.yy += yy;
          s.tokens += session.totalTokens;
          open.delete(i);
        }
      }
    } catch (e) {
      throw inWindowTerms(e, batches, bi);
    } finally {
      await session.dispose();
    }
  }
  tracker.finish(lastLayer);
  return sums;
}

/** The solved patch of one block. */
export interface HealFit {
  block: HealBlock;
  /** [hidden, hidden] row-major: the patched MLP output is M T. */
  T: Float64Array;
  alpha: number;
  /** ||M T - Y|| / ||Y|| over the calibration tokens. */
  relativeResidual: number;
  /** ||M - Y|| / ||Y||: the same for T = I, i.e. plain deletion. */
  plainResidual: number;
  tokens: number;
}

/** T = (G + alpha I)⁻¹ B by Cholesky in double; ERR_HEAL_SINGULAR when not positive definite. */
export function solveHeal(s: HealSums, alpha: number, threads = defaultThreads()): HealFit {
  const H = Math.round(Math.sqrt(s.G.length));
  const T = new Float64Array(s.B);
  const pivot = loadBinding().healSolve(s.G, alpha, T, H, H, threads);
  const { start, end, patchedLayer } = s.block;
  if (pivot >= 0) {
    throw new ShortGptError('ERR_HEAL_SINGULAR', `--heal lstsq: for the cut of layers ${start}..${end - 1}, MᵀM + ${alpha}·I (layer ${patchedLayer}'s MLP output over ${s.tokens} calibration tokens, hidden ${H}) is not positive definite (pivot ${pivot}); give --heal-ridge a positive value (e.g. ${ridgeHint(s.G, H)}) or more calibration tokens`);
  }
  // With (G + aI) T = B: tr(TᵀGT) = tr(TᵀB) - a||T||², so ||MT - Y||² = ||Y||² - tr(TᵀB) - a||T||².
  let tb = 0;
  let tt = 0;
  let trG = 0;
  let trB = 0;
  for (let i = 0; i < T.length; i++) {
    tb += T[i] * s.B[i];
    tt += T[i] * T[i];
  }
  for (let i = 0; i < H; i++) {
    trG += s.G[i * H + i];
    trB += s.B[i * H + i];
  }
  const residual = Math.max(0, s.yy - tb - alpha * tt);
  // T = I: ||M - Y||² = tr(G) - 2 tr(B) + ||Y||².
  const plain = Math.max(0, trG - 2 * trB + s.yy);
  const norm = Math.sqrt(s.yy);
  return {
    block: s.block, T, alpha,
    relativeResidual: norm > 0 ? Math.sqrt(residual) / norm : 0,
    plainResidual: norm > 0 ? Math.sqrt(plain) / norm : 0,
    tokens: s.tokens,
  };
}

function ridgeHint(G: Float64Array, H: number): string {
  let tr = 0;
  for (let i = 0; i < H; i++) tr += G[i * H + i];
  return ((tr / H) * 1e-4).toPrecision(2);
}

/** Decodes a tensor to double. */
async function readTensor64(t: TensorInfo): Promise<Float64Array> {
  return Float64Array.from(decodeToF32(t, await readTensorBytes(t)));
}

/**
 * The nearest value of `dtype` to x, ties to even, as little-endian bits: a direct rounding from
 * double (rounding through f32 first can land on a 16-bit tie that x was not on).
 */
function roundHalf(x: number, toBits: (v: number) => number, fromBits: (b: number) => number): number {
  const c = toBits(Math.fround(x));
  if (!Number.isFinite(x) || fromBits(c) === x) return c;
  let best = c;
  for (const k of [c - 1, c + 1]) {
    // Neighbours in magnitude within the same sign (bit 15); skip across-sign wraps and NaNs.
    if (k < 0 || k > 0xffff || (k & 0x8000) !== (c & 0x8000)) continue;
    const v = fromBits(k);
    if (!Number.isFinite(v)) continue;
    const d = Math.abs(v - x);
    const bd = Math.abs(fromBits(best) - x);
    if (d < bd || (d === bd && (k & 1) === 0)) best = k;
  }
  return best;
}

/** Doubles as `dtype` bytes (F32 / F16 / BF16, little-endian, round to nearest even). */
export function encodeDtype(values: Float64Array, dtype: string, tensorName: string): Buffer {
  if (dtype === 'F32') {
    const buf = Buffer.alloc(values.length * 4);
    for (let i = 0; i < values.length; i++) buf.writeFloatLE(Math.fround(values[i]), i * 4);
    return buf;
  }
  if (dtype === 'F16' || dtype === 'BF16') {
    const [to, from] = dtype === 'F16' ? [f32ToF16Bits, f16BitsToF32] : [f32ToBf16Bits, bf16BitsToF32];
    const buf = Buffer.alloc(values.length * 2);
    for (let i = 0; i < values.length; i++) buf.writeUInt16LE(roundHalf(values[i], to, from), i * 2);
    return buf;
  }
  throw new ShortGptError('ERR_DTYPE', `--heal: tensor '${tensorName}' has dtype ${dtype}; the patched down_proj can be written as F32, F16 or BF16 only`);
}

/** The patched down_proj: Tᵀ W_down (W_down [hidden, intermediate]) in the checkpoint's dtype. */
export async function foldDownProj(ckpt: Checkpoint, fit: HealFit, threads = defaultThreads()): Promise<{ tensor: TensorInfo; bytes: Buffer }> {
  const layer = fit.block.patchedLayer as number;
  const tensor = layerTensors(ckpt, layer).get('down_proj');
  if (!tensor) throw new ShortGptError('ERR_TENSOR_MISSING', `${ckpt.dir}: layer ${layer} has no down_proj`);
  const [H, I] = tensor.shape;
  const W = await readTensor64(tensor);
  const folded = loadBinding().healFold(fit.T, W, H, H, I, threads);
  return { tensor, bytes: encodeDtype(folded, tensor.dtype, tensor.name) };
}

/** What --heal did, for report.json. */
export interface HealReport {
  /** The healing method: 'lstsq', a least-squares linear patch per removed block (ReplaceMe). */
  method: 'lstsq';
  /** Ridge alpha added to MᵀM's diagonal (`healRidge`, default 0). */
  alpha: number;
  /** One entry per removed block; `patchedLayer` null: the block starts at layer 0 and stays plain. */
  blocks: Array<{
    /** The block's layers, [first, end): end is the first kept layer after it (original indices). */
    removed: [number, number];
    /** The layer before the block, whose down_proj the patch is folded into (original index). */
    patchedLayer: number | null;
    /** The name of the replaced down_proj tensor. */
    tensor: string | null;
    /** Calibration tokens the patch was fitted on. */
    tokens: number;
    /** ||M T - Y|| / ||Y|| over the calibration tokens: the healed block's error. */
    relativeResidual: number | null;
    /** ||M - Y|| / ||Y||: the same for plain deletion (T = I), to compare with. */
    plainResidual: number | null;
  }>;
  /** With --eval: perplexity of the original, of plain deletion (layers skipped at run time) and of the healed model. */
  perplexity?: { original: number; plain: number; healed: number };
}

/** The healing of one cut: the replaced tensors for the rewrite and the report entry. */
export interface HealResult {
  report: HealReport;
  fits: HealFit[];
  replace: Map<string, Buffer>;
  /** The patched tensors by source tensor name, for evaluating the healed model before it is written. */
  patched: Map<string, { tensor: TensorInfo; bytes: Buffer }>;
}

/** Gathers, solves and folds for the cut `removed`. */
export async function healCut(ckpt: Checkpoint, batches: readonly Batch[], removed: readonly number[], alpha: number, opts: HealPassOptions = {}): Promise<HealResult> {
  const blocks = removedBlocks(removed);
  const sums = await gatherHealSums(ckpt, batches, blocks, opts);
  const threads = opts.engine?.threads ?? defaultThreads();
  const fits = sums.map((s) => solveHeal(s, alpha, threads));
  const replace = new Map<string, Buffer>();
  const patched = new Map<string, { tensor: TensorInfo; bytes: Buffer }>();
  for (const fit of fits) {
    const p = await foldDownProj(ckpt, fit, threads);
    replace.set(p.tensor.name, p.bytes);
    patched.set(p.tensor.name, p);
  }
  return {
    fits, replace, patched,
    report: {
      method: 'lstsq',
      alpha,
      blocks: blocks.map((b) => {
        const fit = fits.find((f) => f.block.start === b.start);
        const tensor = b.patchedLayer !== null ? layerTensors(ckpt, b.patchedLayer).get('down_proj')?.name ?? null : null;
        return {
          removed: [b.start, b.end] as [number, number],
          patchedLayer: b.patchedLayer,
          tensor,
          tokens: fit?.tokens ?? 0,
          relativeResidual: fit?.relativeResidual ?? null,
          plainResidual: fit?.plainResidual ?? null,
        };
      }),
    },
  };
}

/**
 * A view of `ckpt` whose patched tensors are read from a temporary file: the healed model's
 * weights, to evaluate before the rewrite writes them. `cleanup` removes the file.
 */
export async function withPatchedTensors(ckpt: Checkpoint, patched: HealResult['patched']): Promise<{ ckpt: Checkpoint; cleanup: () => Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'shortgpt-heal-'));
  const tensors = new Map(ckpt.tensors);
  let offset = 0;
  const file = path.join(dir, 'patched.bin');
  const parts: Buffer[] = [];
  for (const [name, p] of patched) {
    tensors.set(name, { ...p.tensor, file, dataOffset: offset });
    parts.push(p.bytes);
    offset += p.bytes.length;
  }
  await fsp.writeFile(file, Buffer.concat(parts));
  return { ckpt: { ...ckpt, tensors }, cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
}
