/**
 * Runs addon kernel calls under a given SHORTGPT_NO_AVX512 / SHORTGPT_NO_AVX2 setting. The addon
 * reads these with getenv on every call, but jest gives each test file its own copy of
 * process.env, so setting them inside a test changes nothing: the variants that need them run in
 * one child process per batch (kernelChild.js) whose real environment carries them.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadBinding } from '../../../lib/engine/binding';

export type KernelEnv = Partial<Record<'SHORTGPT_NO_AVX512' | 'SHORTGPT_NO_AVX2', string>>;
type TypedArray = Float32Array | Uint8Array | Uint16Array;
export interface KernelCall { fn: 'gemmForTest' | 'convertToF32ForTest'; args: unknown[] }
/** The GEMM kernel the batch's process reported (cpuInfo().kernel) and each call's result. */
export interface KernelBatch { kernel: string; results: Float32Array[] }

const childJs = path.join(__dirname, 'kernelChild.js');
const repoRoot = path.join(__dirname, '..', '..', '..');

function encode(v: unknown): unknown {
  if (!ArrayBuffer.isView(v)) return v;
  const a = v as TypedArray;
  return { $typed: a.constructor.name, b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64'), byteOffset: a.byteOffset };
}

function decodeF32(v: { b64: string }): Float32Array {
  const bytes = Buffer.from(v.b64, 'base64');
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/**
 * `env` undefined: the calls run here, with the environment jest started with. Otherwise in a
 * child whose environment is this one with both variables taken out and `env`'s put in.
 */
export function runKernelBatch(env: KernelEnv | undefined, calls: KernelCall[]): KernelBatch {
  if (env === undefined) {
    const binding = loadBinding() as unknown as Record<string, (...a: unknown[]) => Float32Array> & { cpuInfo(): { kernel: string } };
    return { kernel: binding.cpuInfo().kernel, results: calls.map(({ fn, args }) => binding[fn]!(...args)) };
  }
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.SHORTGPT_NO_AVX512;
  delete childEnv.SHORTGPT_NO_AVX2;
  Object.assign(childEnv, env);
  const r = spawnSync(process.execPath, [childJs], {
    cwd: repoRoot, env: childEnv, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024,
    input: JSON.stringify({ calls: calls.map(({ fn, args }) => ({ fn, args: args.map(encode) })) }),
  });
  if (r.status !== 0) throw new Error(`kernelChild.js with ${JSON.stringify(env)} failed (${r.status ?? r.signal}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { kernel: string; results: Array<{ b64: string }> };
  return { kernel: out.kernel, results: out.results.map(decodeF32) };
}

/** What cpuInfo().kernel must say under `env` on this CPU, from its features alone. */
export function expectedKernel(env: KernelEnv | undefined): string {
  const features = loadBinding().cpuInfo().features;
  const vars: KernelEnv = env ?? process.env;
  if (!(features.includes('avx2') && features.includes('fma')) || vars.SHORTGPT_NO_AVX2 === '1') return 'portable';
  return features.includes('avx512f') && vars.SHORTGPT_NO_AVX512 !== '1' ? 'avx512' : 'avx2-fma';
}
