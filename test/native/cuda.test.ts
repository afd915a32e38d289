/**
 * The CUDA backend as seen from Node: the shared object is built where nvcc exists and is reached
 * only through its ABI table; the addon itself links no CUDA library; probing a machine without
 * a GPU answers "not usable" with the reason instead of crashing; `--device` resolves as
 * documented. Backend suites run once per available backend, CUDA skipped with a visible note
 * where there is no usable device (the GPU-side parity lives in scripts/cuda_parity.py, run by
 * scripts/gpu-check.sh).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeCudaInfo } from '../../binding';
import { bindingPath, loadBinding } from '../../lib/engine/binding';
import { parseDeviceRequest, probeCuda, resetCudaProbe, resolveDevice } from '../../lib/engine/device';
import { goldenDir, stories260kDir } from '../helpers/paths';

const nvccAvailable =
  fs.existsSync('/usr/local/cuda/bin/nvcc') || spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;

function addonDir(): string {
  loadBinding();
  const p = bindingPath();
  if (!p) throw new Error('addon path unknown');
  return path.dirname(p);
}

/** The NEEDED entries of an ELF file's dynamic section (readelf), or undefined without readelf. */
function neededLibraries(file: string): string[] | undefined {
  const r = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

const probe = probeCuda();
const cudaUsable = probe.usable;
if (!cudaUsable) {
  console.warn(`CUDA backend tests: CUDA cases skipped (no usable device here): ${probe.reason}`);
}

describe('CUDA build and loading', () => {
  (nvccAvailable ? test : test.skip)('libshortgpt_cuda.so is built beside the addon and exports the ABI table', () => {
    const lib = path.join(addonDir(), 'libshortgpt_cuda.so');
    expect(fs.existsSync(lib)).toBe(true);
    // compiled === true means: dlopen worked, shortgpt_cuda_api_v1 was found and its version matched.
    expect(probe.compiled).toBe(true);
    expect(probe.library).toBe(lib);
    expect(probe.build).toMatch(/cuda runtime \d+\.\d+, archs .*80-real.*90-real.*90-virtual/);
    const needed = neededLibraries(lib);
    if (needed) {
      // cudart is linked statically and cuBLAS is dlopened: no CUDA library is a load-time need.
      expect(needed.filter((n) => /cudart|cublas/.test(n))).toEqual([]);
    }
  });

  test('the addon itself links no CUDA library (CPU-only users need none)', () => {
    loadBinding();
    const needed = neededLibraries(bindingPath() as string);
    if (!needed) return console.warn('readelf not found: NEEDED entries not checked');
    expect(needed.filter((n) => /cuda|cublas/i.test(n))).toEqual([]);
  });

  test('cudaInfo() answers in a child process without crashing, with a reason when not usable', () => {
    expect(typeof probe.usable).toBe('boolean');
    if (!probe.usable) expect(probe.reason.length).toBeGreaterThan(10);
    else expect(probe.devices?.length).toBeGreaterThan(0);
  });

  (cudaUsable ? test.skip : test)('without a GPU, cudaInfo() says why (no driver or no device), in process too', () => {
    const info = loadBinding().cudaInfo();
    expect(info.usable).toBe(false);
    if (info.compiled) expect(info.reason).toMatch(/driver|device|cuBLAS/);
    else expect(info.reason).toMatch(/no CUDA backend/);
  });

  test('a missing or broken CUDA shared object is reported, not fatal', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-cuda-'));
    const bogus = path.join(dir, 'libshortgpt_cuda.so');
    fs.writeFileSync(bogus, 'not an ELF file');
    const saved = process.env.SHORTGPT_CUDA_LIB;
    try {
      for (const lib of [bogus, path.join(dir, 'missing.so')]) {
        process.env.SHORTGPT_CUDA_LIB = lib;
        resetCudaProbe();
        const info = probeCuda();
        expect(info).toMatchObject({ compiled: false, usable: false, library: lib });
        expect(info.reason).toContain(lib);
      }
    } finally {
      if (saved === undefined) delete process.env.SHORTGPT_CUDA_LIB;
      else process.env.SHORTGPT_CUDA_LIB = saved;
      resetCudaProbe();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--device resolution', () => {
  const noGpu = (): NativeCudaInfo => ({ compiled: true, usable: false, reason: 'no NVIDIA driver: libcuda.so.1 could not be loaded', library: 'x.so' });
  const gpu = (): NativeCudaInfo => ({
    compiled: true, usable: true, reason: '', library: 'x.so', cublas: 'libcublas.so.13',
    devices: [{ ordinal: 0, name: 'NVIDIA H200', computeCapability: '9.0', multiprocessors: 132, totalBytes: 1, freeBytes: 1 }],
  });

  test('cpu is always cpu, without probing', () => {
    expect(resolveDevice('cpu', () => { throw new Error('must not probe'); })).toMatchObject({ device: 'cpu' });
  });

  test('cuda without a usable device is ERR_CUDA_UNAVAILABLE with the reason, never a fallback', () => {
    expect(() => resolveDevice('cuda', noGpu)).toThrow(expect.objectContaining({
      code: 'ERR_CUDA_UNAVAILABLE', message: expect.stringContaining('libcuda.so.1'),
    }));
  });

  test('auto picks cuda when usable and says which device', () => {
    const r = resolveDevice('auto', gpu);
    expect(r.device).toBe('cuda');
    expect(r.reason).toContain('NVIDIA H200 (sm_90)');
  });

  test('auto falls back to cpu and says why', () => {
    const r = resolveDevice(undefined, noGpu);
    expect(r.device).toBe('cpu');
    expect(r.reason).toMatch(/^device: cpu \(auto: CUDA not usable: no NVIDIA driver/);
  });

  test('an unknown --device value is a usage error naming the option', () => {
    expect(() => parseDeviceRequest('gpu')).toThrow(expect.objectContaining({ code: 'ERR_USAGE', message: expect.stringContaining('--device') }));
  });

  (cudaUsable ? test.skip : test)('on this machine (no GPU): --device cuda fails with ERR_CUDA_UNAVAILABLE, auto picks cpu', () => {
    expect(() => resolveDevice('cuda')).toThrow(expect.objectContaining({ code: 'ERR_CUDA_UNAVAILABLE' }));
    expect(resolveDevice('auto')).toMatchObject({ device: 'cpu', reason: expect.stringContaining('auto') });
  });
});

// Backend parity through the addon: run per available backend. The CUDA case needs a GPU and the
// Session binding's `device: 'cuda'` option (native/binding/cuda_binding.h createCudaBackend).
const backends: Array<{ name: 'cpu' | 'cuda'; available: boolean }> = [
  { name: 'cpu', available: true },
  { name: 'cuda', available: cudaUsable },
];

describe.each(backends)('backend $name', ({ name, available }) => {
  const modelDir = stories260kDir;
  const run = available ? test : test.skip;
  const label = available
    ? 'stories260k Block Influence matches the golden values'
    : `stories260k Block Influence matches the golden values (SKIPPED: no usable ${name} device here)`;
  run(label, async () => {
    const { scoreLayers } = await import('../../lib/scoring/scoreLayers');
    const golden = JSON.parse(fs.readFileSync(path.join(goldenDir, 'stories260k.json'), 'utf8')) as {
      layers: Array<{ bi: number; angular: number }>;
    };
    const tokens = JSON.parse(fs.readFileSync(path.join(goldenDir, 'stories260k-tokens.json'), 'utf8')) as number[][];
    // 4 sequences keep the CPU case quick; BI on a subset differs from the golden pooled value, so
    // compare CPU and this backend on the same subset, and the full set only against golden.
    const subset = tokens.slice(0, 4);
    const options = { threads: 2, device: name } as Parameters<typeof scoreLayers>[2];
    const got = await scoreLayers(modelDir, subset, options);
    const cpu = await scoreLayers(modelDir, subset, { threads: 2 });
    const tol = name === 'cuda' ? 2e-3 : 0; // TF32 by default on the GPU; the CPU is bit-exact with itself
    got.layers.forEach((l, i) => {
      expect(Math.abs(l.blockInfluence - cpu.layers[i].blockInfluence)).toBeLessThanOrEqual(tol);
      expect(Math.abs(l.angularDistance - cpu.layers[i].angularDistance)).toBeLessThanOrEqual(tol);
    });
    if (name === 'cuda') {
      const full = await scoreLayers(modelDir, tokens, options);
      full.layers.forEach((l, i) => expect(Math.abs(l.blockInfluence - golden.layers[i].bi)).toBeLessThanOrEqual(2e-3));
    }
  });
});
