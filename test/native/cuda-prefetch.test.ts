/**
 * The next layer reaches the CUDA backend (issue 16, item 3), checked without a GPU:
 *
 * 1. The addon's CUDA binding, driven in a child process against a fake libshortgpt_cuda.so
 *    (native/tests/fake_cuda_backend.cc, via SHORTGPT_CUDA_LIB) that logs what each
 *    sessionForwardLayer received: every layer but the last comes with a non-null `next` whose
 *    host bytes are exactly the following layer's bytes in the safetensors file, and whose cache
 *    key is the key that layer carries when it runs (so the prefetched copy is found). A child
 *    process, because the addon loads its CUDA library once per process.
 * 2. The library's callers (scoreLayers, perplexity with skipped layers) hand EngineSession the
 *    following layer that actually runs, and nothing after the last.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeTensorRef } from '../../binding';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { bindingPath, loadBinding } from '../../lib/engine/binding';
import { embeddingRef, layerTensorRefs, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession, type ForwardOptions } from '../../lib/engine/session';
import { perplexity } from '../../lib/eval/perplexity';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { repoRoot, stories260kDir } from '../helpers/paths';

const fakeLib = path.join(repoRoot, 'build', 'Release', 'libfakecuda_for_tests.so');
const dtypeBytes: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** Sum of every byte of a layer's tensors, read straight from the files (independent of the addon). */
function layerByteSum(refs: Record<string, NativeTensorRef>): bigint {
  let sum = 0n;
  for (const r of Object.values(refs)) {
    const n = r.shape.reduce((a, b) => a * b, 1) * dtypeBytes[r.dtype];
    const buf = Buffer.alloc(n);
    const fd = fs.openSync(r.file, 'r');
    try {
      fs.readSync(fd, buf, 0, n, r.offset);
    } finally {
      fs.closeSync(fd);
    }
    let s = 0;
    for (let i = 0; i < n; i++) s += buf[i];
    sum += BigInt(s);
  }
  return sum;
}

interface LogLine { key: string; bytes: bigint; next?: { key: string; bytes: bigint } }

function parseLog(text: string): LogLine[] {
  return text.trim().split('\n').map((line) => {
    const m = /^forward key=(\d+) bytes=(\d+) (?:next=none|next=(\d+) nextBytes=(\d+))$/.exec(line);
    if (!m) throw new Error(`unexpected fake backend log line: ${line}`);
    return { key: m[1], bytes: BigInt(m[2]), next: m[3] ? { key: m[3], bytes: BigInt(m[4]) } : undefined };
  });
}

/** Runs the raw addon in a child process with the fake CUDA library; returns its log. */
function runChild(job: unknown): { log: LogLine[]; stderr: string; status: number | null } {
  loadBinding();
  const addon = bindingPath() as string;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-fakecuda-'));
  try {
    const logFile = path.join(dir, 'log.txt');
    const jobFile = path.join(dir, 'job.json');
    fs.writeFileSync(jobFile, JSON.stringify(job));
    const script = `
      const b = require(${JSON.stringify(addon)});
      const job = JSON.parse(require('fs').readFileSync(${JSON.stringify(jobFile)}, 'utf8'));
      (async () => {
        const s = new b.Session({ spec: job.spec, sequences: [Int32Array.from([1, 5, 9, 13])], threads: 1, device: 'cuda' });
        await s.embed(job.embed);
        for (let i = 0; i < job.layers.length; i++) await s.forwardLayer(i, job.layers[i], undefined, job.next[i] ?? undefined);
        await s.dispose();
      })().catch((e) => { process.stderr.write(String(e.code) + ': ' + e.message); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, SHORTGPT_CUDA_LIB: fakeLib, SHORTGPT_FAKE_CUDA_LOG: logFile },
    });
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    return { log: text ? parseLog(text) : [], stderr: r.stderr, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the CUDA binding passes the next layer down (fake CUDA library, no GPU)', () => {
  beforeAll(() => {
    if (!fs.existsSync(fakeLib)) throw new Error(`${fakeLib} is missing: run \`npm run compile:native\``);
  });

  test('every layer but the last carries the following layer, byte for byte and with its cache key', async () => {
    const ckpt = await openCheckpoint(stories260kDir);
    const L = ckpt.config.numHiddenLayers;
    const layers = Array.from({ length: L }, (_, l) => layerTensorRefs(ckpt, l));
    const r = runChild({
      spec: nativeModelSpec(ckpt.config), embed: embeddingRef(ckpt), layers,
      next: layers.map((_, l) => (l + 1 < L ? layers[l + 1] : null)),
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.log).toHaveLength(L);
    const sums = layers.map(layerByteSum);
    for (let l = 0; l < L; l++) {
      expect(r.log[l].bytes).toBe(sums[l]);
      if (l + 1 < L) {
        expect(r.log[l].next).toEqual({ key: r.log[l + 1].key, bytes: sums[l + 1] });
      } else {
        expect(r.log[l].next).toBeUndefined();
      }
    }
    // Distinct layers have distinct keys (a key collision would reuse the wrong weights).
    expect(new Set(r.log.map((x) => x.key)).size).toBe(L);
  });

  test('a next layer that fails validation is dropped, and this layer still runs', async () => {
    const ckpt = await openCheckpoint(stories260kDir);
    const l0 = layerTensorRefs(ckpt, 0);
    const bad = { ...layerTensorRefs(ckpt, 1) };
    bad.down_proj = { ...bad.down_proj, shape: [bad.down_proj.shape[0], bad.down_proj.shape[1] - 1] };
    const r = runChild({ spec: nativeModelSpec(ckpt.config), embed: embeddingRef(ckpt), layers: [l0], next: [bad] });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.log).toHaveLength(1);
    expect(r.log[0].next).toBeUndefined();
  });
});

describe('callers hand EngineSession the layer that runs next', () => {
  const sequences = [[1, 50, 70, 90, 110, 130], [1, 60, 61, 62]];

  function recordNext(): { calls: Array<{ layer: number; next?: Record<string, NativeTensorRef> }>; restore: () => void } {
    const calls: Array<{ layer: number; next?: Record<string, NativeTensorRef> }> = [];
    const original = EngineSession.prototype.forwardLayer;
    const spy = jest.spyOn(EngineSession.prototype, 'forwardLayer').mockImplementation(function (
      this: EngineSession, layer: number, weights: Record<string, NativeTensorRef>, options?: ForwardOptions,
    ) {
      calls.push({ layer, next: options?.next });
      return original.call(this, layer, weights, options);
    });
    return { calls, restore: () => spy.mockRestore() };
  }

  test('scoreLayers: layer l + 1 for every layer but the last', async () => {
    const ckpt = await openCheckpoint(stories260kDir);
    const rec = recordNext();
    try {
      await scoreLayers(ckpt, sequences, { threads: 1 });
    } finally {
      rec.restore();
    }
    const L = ckpt.config.numHiddenLayers;
    expect(rec.calls.map((c) => c.layer)).toEqual([...Array(L).keys()]);
    rec.calls.forEach((c, i) => expect(c.next).toEqual(i + 1 < L ? layerTensorRefs(ckpt, i + 1) : undefined));
  });

  test('perplexity with skipped layers: the next layer that is not skipped', async () => {
    const ckpt = await openCheckpoint(stories260kDir);
    const rec = recordNext();
    try {
      await perplexity(ckpt, sequences, { threads: 1, skipLayers: [1, 4] });
    } finally {
      rec.restore();
    }
    expect(rec.calls.map((c) => c.layer)).toEqual([0, 2, 3]);
    expect(rec.calls.map((c) => c.next)).toEqual([layerTensorRefs(ckpt, 2), layerTensorRefs(ckpt, 3), undefined]);
  });
});
