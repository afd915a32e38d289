/** `shortgpt-native doctor`: what this installation can do, and why not where it cannot. */
import { bindingPath, loadBinding } from '../../engine/binding';
import { probeCuda } from '../../engine/device';
import { packageVersion } from '../../version';
import { flag, noExtraPositionals, parseCommandLine } from '../args';
import type { Command } from '../command';
import { examplesBlock } from '../examples';

/** What {@link doctorReport} finds (`doctor --json` prints it). */
export interface DoctorReport {
  /** This package's version. */
  packageVersion: string;
  /** Node.js version (process.versions.node). */
  node: string;
  /** `<platform>-<arch>`, e.g. linux-x64: the prebuilt binary this platform needs. */
  platform: string;
  /** The native addon: whether it loaded, from where, its version and backends, or why not. */
  addon: { loaded: boolean; version?: string; path?: string; error?: string; backends: string[] };
  /** The CPU backend: detected features, the GEMM kernel that runs, and threads (absent when the addon did not load). */
  cpu?: {
    features: string[]; kernel: string; hardwareThreads: number; threads: number;
    /** The BF16 kernels of --precision bf16, best first (empty: unavailable, bf16Unavailable says why). */
    bf16Kernels: string[]; bf16Unavailable: string;
  };
  /** The CUDA backend: whether it is usable, why not, and the devices found. */
  cuda: {
    usable: boolean;
    reason: string;
    compiled?: boolean;
    build?: string;
    devices?: Array<{ name: string; computeCapability: string; totalBytes: number }>;
  };
}

/**
 * What this installation can do: the addon that loads (prebuilt or source build), its
 * backends, the CPU features and threads in use, and whether CUDA is usable (and why not). Never
 * throws: a missing addon is reported in `addon.error`.
 */
export function doctorReport(): DoctorReport {
  const report: DoctorReport = {
    packageVersion,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    addon: { loaded: false, backends: [] },
    cuda: { usable: false, reason: 'this build has no CUDA backend' },
  };
  try {
    const binding = loadBinding();
    const build = binding.buildInfo();
    const cpu = binding.cpuInfo();
    report.addon = { loaded: true, version: build.version, path: bindingPath(), backends: build.backends };
    report.cpu = {
      features: cpu.features, kernel: cpu.kernel, hardwareThreads: cpu.hardwareThreads, threads: cpu.hardwareThreads,
      bf16Kernels: cpu.bf16Kernels ?? [], bf16Unavailable: cpu.bf16Unavailable ?? 'the loaded addon predates the BF16 kernels',
    };
    // Probed in a child process (lib/engine/device.ts): a broken driver must not crash doctor.
    const c = probeCuda();
    report.cuda = {
      usable: c.usable, reason: c.reason, compiled: c.compiled, build: c.build,
      devices: c.devices?.map((d) => ({ name: d.name, computeCapability: d.computeCapability, totalBytes: d.totalBytes })),
    };
  } catch (e) {
    report.addon.error = e instanceof Error ? e.message : String(e);
  }
  return report;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'report the package and addon versions, backends, CPU features and threads',
  help: `${examplesBlock([
    { what: 'what this installation can do: addon, backends, CPU kernel and threads, and whether CUDA is usable (and why not)', command: 'doctor' },
    { what: 'the same as one JSON document, e.g. to attach to a bug report', command: 'doctor --json' },
  ])}Usage: shortgpt-native doctor [--json]

Reports the package and native addon versions, the backends compiled in, the CPU features
and GEMM kernel in use, the thread count, and whether CUDA is usable (and why not).
Exits 1 when the native addon cannot be loaded.

Options:
  --json    print one JSON document on stdout
  -h, --help`,
  async run(argv, io) {
    const parsed = parseCommandLine('doctor', argv, { json: { type: 'boolean' } });
    noExtraPositionals('doctor', parsed, 0);
    const r = doctorReport();
    if (flag(parsed, 'json')) {
      io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      const lines = [
        `shortgpt-native ${r.packageVersion} (node ${r.node}, ${r.platform})`,
        r.addon.loaded
          ? `addon      ${r.addon.version}${r.addon.version !== r.packageVersion ? `  (MISMATCH: package is ${r.packageVersion}; rebuild)` : ''}  ${r.addon.path ?? ''}`
          : `addon      NOT LOADED: ${r.addon.error}`,
        `backends   ${r.addon.backends.join(', ') || 'none'}`,
      ];
      if (r.cpu) {
        lines.push(`cpu        ${r.cpu.features.join(' ') || '(no AVX2/FMA)'}; kernel ${r.cpu.kernel}`);
        lines.push(`bf16       ${r.cpu.bf16Kernels.length > 0 ? `${r.cpu.bf16Kernels.join(', ')} (--precision bf16 available)` : `unavailable: ${r.cpu.bf16Unavailable}`}`);
        lines.push(`threads    ${r.cpu.threads} of ${r.cpu.hardwareThreads}`);
      }
      lines.push(`cuda       ${r.cuda.usable ? `usable: ${(r.cuda.devices ?? []).map((d) => `${d.name} (sm_${d.computeCapability.replace('.', '')})`).join(', ')}` : `not usable: ${r.cuda.reason}`}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return r.addon.loaded ? 0 : 1;
  },
};
