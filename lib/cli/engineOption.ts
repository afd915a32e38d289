/**
 * The options that say where the engine computes, shared by every command that runs the model
 * (score, eval, prune by score, demo): --threads and --device. Parsed and resolved once per
 * command, here, so each command only passes the resulting EngineOptions on.
 */
import { parseDeviceRequest, resolveDevice, type ResolvedDevice } from '../engine/device';
import type { EngineOptions } from '../engine/engineOptions';
import { UsageError } from '../errors';
import { intOption, stringOption, type OptionSpec, type Parsed } from './args';
import type { CliIO } from './command';

export const ENGINE_OPTION_SPEC: OptionSpec = {
  threads: { type: 'string' },
  device: { type: 'string' },
};

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
  --threads N            CPU worker threads (default: all hardware threads)`;

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
  const resolved = resolveDevice(request);
  if (!opts.silent) io.stderr.write(`${resolved.reason}\n`);
  return { engine: { threads, device: resolved.device }, resolved };
}

/** Validates a --device value where nothing computes (prune --remove-layers): exit 2 if bad. */
export function checkDeviceOption(command: string, parsed: Parsed): void {
  try {
    parseDeviceRequest(stringOption(parsed, 'device'));
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}
