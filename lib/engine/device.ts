/**
 * Which device computes: `--device auto|cpu|cuda` (library option `device`).
 *
 * - `cpu`: always the CPU backend.
 * - `cuda`: the CUDA backend, or ERR_CUDA_UNAVAILABLE saying why not — never a silent fallback.
 * - `auto`: CUDA when a device and cuBLAS are usable, else the CPU; the result says which was
 *   chosen and why, so the CLI can print it.
 *
 * The CUDA probe (driver, devices, cuBLAS) runs first in a child process, as node-llama-cpp
 * does before loading a GPU binary: a broken driver can crash the process that initialises it,
 * and that must not be the user's process.
 */
import { spawnSync } from 'node:child_process';
import type { NativeCudaInfo } from '../../binding';
import { ShortGptError, UsageError } from '../errors';
import { bindingPath, loadBinding } from './binding';

/** A --device value: 'auto' (CUDA when usable, else CPU), 'cpu' or 'cuda'. */
export type DeviceRequest = 'auto' | 'cpu' | 'cuda';
/** Every DeviceRequest, for option parsing and help. */
export const deviceChoices: readonly DeviceRequest[] = ['auto', 'cpu', 'cuda'];

/** The backend a DeviceRequest resolved to, and why. */
export interface ResolvedDevice {
  device: 'cpu' | 'cuda';
  /** One line for the user: what was chosen and why. */
  reason: string;
  /** The probe's answer, when CUDA was probed. */
  cuda?: NativeCudaInfo;
}

/** Validates a `--device` value (UsageError naming the option otherwise). */
export function parseDeviceRequest(value: string | undefined): DeviceRequest {
  if (value === undefined) return 'auto';
  if ((deviceChoices as readonly string[]).includes(value)) return value as DeviceRequest;
  throw new UsageError(`--device must be one of ${deviceChoices.join(', ')}; got '${value}'`);
}

let cachedProbe: NativeCudaInfo | undefined;

/** Forgets the cached probe (tests that change SHORTGPT_CUDA_LIB). */
export function resetCudaProbe(): void {
  cachedProbe = undefined;
}

/**
 * Asks a child process to load the addon and call cudaInfo(); cached per process. A child that
 * crashes, hangs (timeoutMs) or prints garbage yields `usable: false` with the reason.
 */
export function probeCuda(options: { timeoutMs?: number } = {}): NativeCudaInfo {
  if (cachedProbe) return cachedProbe;
  loadBinding(); // loading the addon touches no CUDA library; it tells us which file to probe
  const addon = bindingPath();
  const unusable = (reason: string): NativeCudaInfo => ({ compiled: false, usable: false, reason, library: '' });
  if (!addon) return (cachedProbe = unusable('the native addon path is unknown'));
  const script =
    `const b = require(${JSON.stringify(addon)});` +
    `process.stdout.write(JSON.stringify(typeof b.cudaInfo === 'function' ? b.cudaInfo() : ` +
    `{compiled: false, usable: false, reason: 'this addon has no cudaInfo export (rebuild it)', library: ''}));`;
  const child = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    env: process.env,
  });
  if (child.error) return (cachedProbe = unusable(`the CUDA probe process failed: ${child.error.message}`));
  if (child.signal || child.status !== 0) {
    const how = child.signal ? `was killed by ${child.signal}` : `exited with status ${child.status}`;
    const tail = (child.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return (cachedProbe = unusable(`the CUDA probe process ${how} (a broken NVIDIA driver?)${tail ? `: ${tail}` : ''}`));
  }
  try {
    const info = JSON.parse(child.stdout) as NativeCudaInfo;
    if (typeof info.usable !== 'boolean' || typeof info.reason !== 'string') throw new Error('unexpected shape');
    return (cachedProbe = info);
  } catch (e) {
    return (cachedProbe = unusable(`the CUDA probe printed something unexpected (${(e as Error).message}): ${child.stdout.slice(0, 200)}`));
  }
}

function describeDevices(info: NativeCudaInfo): string {
  const names = (info.devices ?? []).map((d) => `${d.name} (sm_${d.computeCapability.replace('.', '')})`);
  return names.length ? names.join(', ') : 'a CUDA device';
}

/**
 * Resolves a device request. `probe` is injectable for tests; by default probeCuda().
 * Throws ERR_CUDA_UNAVAILABLE for `cuda` when CUDA is not usable, with the probe's reason.
 */
export function resolveDevice(request: DeviceRequest | string | undefined, probe: () => NativeCudaInfo = probeCuda): ResolvedDevice {
  const wanted = parseDeviceRequest(request);
  if (wanted === 'cpu') return { device: 'cpu', reason: 'device: cpu (requested)' };
  const info = probe();
  if (wanted === 'cuda') {
    if (!info.usable) {
      throw new ShortGptError('ERR_CUDA_UNAVAILABLE', `--device cuda: CUDA is not usable: ${info.reason}`);
    }
    return { device: 'cuda', reason: `device: cuda (requested): ${describeDevices(info)}`, cuda: info };
  }
  if (info.usable) return { device: 'cuda', reason: `device: cuda (auto: ${describeDevices(info)} with cuBLAS)`, cuda: info };
  return { device: 'cpu', reason: `device: cpu (auto: CUDA not usable: ${info.reason})`, cuda: info };
}
