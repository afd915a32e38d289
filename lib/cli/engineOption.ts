/**
 * The options that say where the engine computes, shared by every command that runs the model
 * (score, eval, prune by score, demo): --threads and --device. Parsed and resolved once per
 * command, here, so each command only passes the resulting EngineOptions on.
 */
import { parseDeviceRequest, resolveDevice, type ResolvedDevice } from '../engine/device';
import type { EngineOptions } from '../engine/engineOptions';
import { loadBinding } from '../engine/binding';
import { ShortGptError, UsageError } from '../errors';
import { intOption, stringOption, type OptionSpec, type Parsed } from './args';
import type { CliIO } from './command';

export const ENGINE_OPTION_SPEC: OptionSpec = {
  threads: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
};

/** --precision's help, shared with bench. */
export const PRECISION_OPTION_HELP = `  --precision P          CPU matrix products: f32 (default: exact mode, bit-identical for any
                         thread count) or bf16 (fast mode: weights and activations rounded to
                         bf16, f32 accumulation, on Intel AMX or AVX512-BF16; several times
                         faster on CPUs with AMX). The trade: scores move by about 1e-3
                         (Block Influence, angular distance; perplexity by under 1%), and the
                         layer ranking may swap layers whose scores are that close. Where the
                         CPU has neither kernel, bf16 is an error (ERR_PRECISION_UNAVAILABLE),
                         never a silent f32 run. CPU only: on CUDA, see cuda.f32Gemm.`;

/**
 * Reads --precision (UsageError for a value other than f32/bf16: exit 2) and, for bf16, checks
 * that this CPU has a BF16 kernel (ERR_PRECISION_UNAVAILABLE, exit 1, saying why) before any work.
 */
export function precisionOption(command: string, parsed: Parsed): 'f32' | 'bf16' | undefined {
  const precision = stringOption(parsed, 'precision');
  if (precision === undefined) return undefined;
  if (precision !== 'f32' && precision !== 'bf16') {
    throw new UsageError(`${command}: --precision must be f32 or bf16, got '${precision}'`);
  }
  if (precision === 'bf16') {
    const cpu = loadBinding().cpuInfo();
    if (!cpu.bf16Kernels || cpu.bf16Kernels.length === 0) {
      throw new ShortGptError('ERR_PRECISION_UNAVAILABLE', `${command}: --precision bf16 needs a CPU with AMX-BF16 or AVX512-BF16: ${cpu.bf16Unavailable || 'the loaded addon has no BF16 kernels (rebuild it)'}; use --precision f32`);
    }
  }
  return precision;
}

// What native/cuda/cuda_session.cc does: F32 weights -> cublasGemmEx with
// CUBLAS_COMPUTE_32F_FAST_TF32 unless cuda.f32Gemm says 'f32' (CUBLAS_COMPUTE_32F) or 'bf16'
// (weights converted to BF16); 16-bit weights -> inputs in that dtype, CUBLAS_COMPUTE_32F.
export const ENGINE_OPTION_HELP = `Engine options:
  --device D             auto (default), cpu or cuda. auto picks CUDA when a device of compute
                         capability 8.0 or newer and cuBLAS are usable, else the CPU, and says
                         which and why on stderr (not with --quiet or --json). cuda where CUDA
                         is not usable is an error (ERR_CUDA_UNAVAILABLE), never the CPU instead.
                         On CUDA, F32 checkpoints' matrix products run as TF32 on the tensor
                         cores (inputs rounded to TF32, F32 accumulation), so scores are close
                         to, not equal to, the CPU's; BF16/F16 checkpoints multiply in their own
                         dtype with F32 accumulation. The residual stream stays F32 and the
                         Block Influence sums are in double on both devices. (Library option
                         cuda.f32Gemm: 'f32' for exact F32, 'bf16' to convert F32 weights.)
  --threads N            CPU worker threads (default: all hardware threads)
${PRECISION_OPTION_HELP}`;

/** The device chosen for a command, with the engine options to pass on. */
export interface CommandEngine {
  engine: EngineOptions & { device: 'cpu' | 'cuda' };
  resolved: ResolvedDevice;
}

/**
 * Reads --threads and --device (UsageError naming the option: exit 2), resolves the device
 * (ERR_CUDA_UNAVAILABLE for --device cuda without CUDA: exit 1) and prints the one-line reason
 * on stderr unless `silent`. Call it after the command's other usage checks and before any
 * work, so a refusal leaves nothing behind.
 */
export function resolveCommandEngine(command: string, parsed: Parsed, io: CliIO, opts: { silent: boolean }): CommandEngine {
  const threads = intOption(command, parsed, 'threads', { min: 1, max: 1024 });
  let request;
  try {
    request = parseDeviceRequest(stringOption(parsed, 'device'));
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
  const precision = precisionOption(command, parsed);
  const resolved = resolveDevice(request);
  if (precision === 'bf16' && resolved.device === 'cuda') {
    throw new UsageError(`${command}: --precision bf16 is the CPU's fast mode, but the device is CUDA (${resolved.reason}); add --device cpu`);
  }
  if (!opts.silent) io.stderr.write(`${resolved.reason}\n`);
  const engine: EngineOptions & { device: 'cpu' | 'cuda' } = { threads, device: resolved.device };
  if (precision !== undefined) engine.precision = precision;
  return { engine, resolved };
}

/** Validates --device and --precision values where nothing computes (prune --remove-layers): exit 2 if bad. */
export function checkDeviceOption(command: string, parsed: Parsed): void {
  const precision = stringOption(parsed, 'precision');
  if (precision !== undefined && precision !== 'f32' && precision !== 'bf16') {
    throw new UsageError(`${command}: --precision must be f32 or bf16, got '${precision}'`);
  }
  try {
    parseDeviceRequest(stringOption(parsed, 'device'));
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}
