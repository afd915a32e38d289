/**
 * The Session's lifecycle at the Node boundary: cancellation through an AbortSignal, dispose()
 * waiting for work in flight, bad tensor references rejected with stable codes, progress, kept
 * last-token states, and an event loop that keeps turning while a layer runs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeTensorRef } from '../../binding';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { embeddingRef, layerTensorRefs, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession, type LayerProgress } from '../../lib/engine/session';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { loadGoldenTokens } from '../helpers/golden';
import { codeOf } from '../helpers/rejection';

const golden = loadGoldenTokens();

let ckpt: Checkpoint;
beforeAll(async () => {
  ckpt = await openCheckpoint(stories260kDir);
});

function session(sequences: number[][], opts: { threads?: number; keepLastTokenStates?: boolean } = {}): EngineSession {
  return EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads: opts.threads ?? 2, keepLastTokenStates: opts.keepLastTokenStates });
}

/** Many sequences, so that one layer runs many batches (about 1,000 tokens each). */
function manySequences(copies: number): number[][] {
  return Array.from({ length: copies }, () => golden).flat();
}

describe('cancellation', () => {
  it('rejects with ERR_ABORTED when the signal is already aborted, and the session stays cancelled', async () => {
    const s = session(golden.slice(0, 2));
    await s.embed(embeddingRef(ckpt));
    const ac = new AbortController();
    ac.abort();
    expect(await codeOf(s.forwardLayer(0, layerTensorRefs(ckpt, 0), { signal: ac.signal }))).toBe('ERR_ABORTED');
    expect(await codeOf(s.forwardLayer(0, layerTensorRefs(ckpt, 0)))).toBe('ERR_ABORTED');
    await s.dispose();
  });

  it('scoreLayers rejects with ERR_ABORTED when aborted from a progress callback', async () => {
    const ac = new AbortController();
    const p = scoreLayers(ckpt, manySequences(4), {
      threads: 2,
      signal: ac.signal,
      onProgress: () => ac.abort(),
    });
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('dispose', () => {
  it('waits for work in flight; later calls reject with ERR_DISPOSED', async () => {
    const s = session(manySequences(2));
    await s.embed(embeddingRef(ckpt));
    const order: string[] = [];
    const work = s.forwardLayer(0, layerTensorRefs(ckpt, 0)).then((r) => {
      order.push('forward');
      return r;
    });
    const disposed = s.dispose().then(() => order.push('dispose'));
    await Promise.all([work, disposed]);
    expect(order).toEqual(['forward', 'dispose']);
    expect((await work).tokens).toBe(2 * 6110);
    expect(await codeOf(s.forwardLayer(1, layerTensorRefs(ckpt, 1)))).toBe('ERR_DISPOSED');
    expect(await codeOf(s.embed(embeddingRef(ckpt)))).toBe('ERR_DISPOSED');
    expect(() => s.lastTokenStates()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    await s.dispose();  // idempotent
  });

  it('a second operation while one is in flight rejects with ERR_BUSY', async () => {
    const s = session(golden.slice(0, 4));
    await s.embed(embeddingRef(ckpt));
    const first = s.forwardLayer(0, layerTensorRefs(ckpt, 0));
    expect(await codeOf(s.forwardLayer(1, layerTensorRefs(ckpt, 1)))).toBe('ERR_BUSY');
    await first;
    await s.dispose();
  });
});

describe('bad inputs reject with stable codes naming the tensor or file', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sgn-session-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function forwardWith(change: (w: Record<string, NativeTensorRef>) => void): Promise<unknown> {
    const s = session(golden.slice(0, 1));
    await s.embed(embeddingRef(ckpt));
    const w = layerTensorRefs(ckpt, 0);
    change(w);
    try {
      await s.forwardLayer(0, w);
      return undefined;
    } catch (e) {
      return e;
    } finally {
      await s.dispose();
    }
  }

  it('a missing file: ERR_IO', async () => {
    const missing = path.join(dir, 'nope.safetensors');
    const e = await forwardWith((w) => { w.q_proj = { ...w.q_proj, file: missing }; });
    expect(e).toMatchObject({ code: 'ERR_IO' });
    expect((e as Error).message).toContain(missing);
  });

  it('an offset past the end of the file: ERR_IO', async () => {
    const size = fs.statSync(ckpt.files[0].file).size;
    const e = await forwardWith((w) => { w.down_proj = { ...w.down_proj, offset: size - 16 }; });
    expect(e).toMatchObject({ code: 'ERR_IO' });
    expect((e as Error).message).toContain('model.layers.0.mlp.down_proj.weight');
  });

  it('a truncated file: ERR_IO', async () => {
    const f = path.join(dir, 'short.safetensors');
    fs.writeFileSync(f, Buffer.alloc(100));
    const e = await forwardWith((w) => { w.o_proj = { ...w.o_proj, file: f }; });
    expect(e).toMatchObject({ code: 'ERR_IO' });
  });

  it('a wrong shape: ERR_SHAPE', async () => {
    const e = await forwardWith((w) => { w.k_proj = { ...w.k_proj, shape: [64, 64] }; });
    expect(e).toMatchObject({ code: 'ERR_SHAPE' });
    expect((e as Error).message).toContain('model.layers.0.self_attn.k_proj.weight');
  });

  it('an unsupported dtype: ERR_DTYPE; a missing or unexpected role', async () => {
    expect(await forwardWith((w) => { w.q_proj = { ...w.q_proj, dtype: 'I8' }; })).toMatchObject({ code: 'ERR_DTYPE' });
    expect(await forwardWith((w) => { delete w.up_proj; })).toMatchObject({ code: 'ERR_MISSING_TENSOR' });
    expect(await forwardWith((w) => { w.q_bias = { ...w.q_proj, shape: [64] }; })).toMatchObject({ code: 'ERR_UNEXPECTED_TENSOR' });
    // stories260k has attention_bias false: an o_proj bias would be silently dropped otherwise.
    expect(await forwardWith((w) => { w.o_bias = { ...w.input_layernorm, name: 'model.layers.0.self_attn.o_proj.bias' }; })).toMatchObject({ code: 'ERR_UNEXPECTED_TENSOR' });
  });

  it('token ids outside the vocabulary: ERR_TOKEN_RANGE; forwardLayer before embed: ERR_STATE', async () => {
    expect(() => session([[1, 2, 512]])).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_RANGE' }));
    expect(() => session([[1, -1]])).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_RANGE' }));
    expect(() => session([[]])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    const s = session([[1, 2]]);
    expect(await codeOf(s.forwardLayer(0, layerTensorRefs(ckpt, 0)))).toBe('ERR_STATE');
    await s.dispose();
  });

  it('a failed layer leaves the session usable only if nothing was computed', async () => {
    const s = session(golden.slice(0, 1));
    await s.embed(embeddingRef(ckpt));
    const w = layerTensorRefs(ckpt, 0);
    expect(await codeOf(s.forwardLayer(0, { ...w, k_proj: { ...w.k_proj, shape: [1, 64] } }))).toBe('ERR_SHAPE');
    // Shapes are checked before any compute, so the session can go on.
    expect((await s.forwardLayer(0, w)).tokens).toBe(golden[0].length);
    await s.dispose();
  });
});

describe('progress, kept states and the event loop', () => {
  it('reports progress per batch and keeps the event loop turning', async () => {
    const seqs = manySequences(2);
    const s = session(seqs);
    await s.embed(embeddingRef(ckpt));
    const events: LayerProgress[] = [];
    let ticks = 0;
    let running = true;
    const tick = (): void => {
      ticks++;
      if (running) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    await s.forwardLayer(3, layerTensorRefs(ckpt, 3), { onProgress: (p) => events.push(p) });
    running = false;
    // Progress arrives through a thread-safe callback and may trail the promise by a turn.
    await new Promise((r) => setTimeout(r, 0));
    expect(ticks).toBeGreaterThan(2);
    expect(events.length).toBeGreaterThan(1);
    expect(events.every((e) => e.layer === 3 && e.sequencesTotal === seqs.length)).toBe(true);
    expect(events.map((e) => e.sequencesDone)).toEqual([...events.map((e) => e.sequencesDone)].sort((a, b) => a - b));
    expect(events[events.length - 1].sequencesDone).toBe(seqs.length);
    await s.dispose();
  });

  it('keeps each sequence\'s last-token state: entry 0 is the embedding row of the last token', async () => {
    const seqs = [golden[0].slice(0, 7), golden[1].slice(0, 300), [1]];
    const r = await scoreLayers(ckpt, seqs, { threads: 1, keepLastTokenStates: true });
    const st = r.lastTokenStates!;
    expect(st.layers).toEqual([-1, 0, 1, 2, 3, 4]);
    expect(st.data).toHaveLength(6 * 3 * 64);
    const emb = ckpt.tensors.get('model.embed_tokens.weight')!;
    const fd = fs.openSync(emb.file, 'r');
    for (let s = 0; s < seqs.length; s++) {
      const id = seqs[s][seqs[s].length - 1];
      const row = Buffer.alloc(64 * 4);
      fs.readSync(fd, row, 0, row.length, emb.dataOffset + id * 64 * 4);
      const want = new Float32Array(row.buffer, row.byteOffset, 64);
      expect(Array.from(st.data.subarray(s * 64, s * 64 + 64))).toEqual(Array.from(want));
    }
    fs.closeSync(fd);
  });

  it('sequences do not see each other: pooled sums equal the sums of separate runs', async () => {
    const a = golden[2];
    const b = golden[5].slice(0, 77);
    const both = await scoreLayers(ckpt, [a, b], { threads: 2 });
    const ra = await scoreLayers(ckpt, [a], { threads: 2 });
    const rb = await scoreLayers(ckpt, [b], { threads: 1 });
    for (let l = 0; l < both.layers.length; l++) {
      expect(both.layers[l].tokens).toBe(a.length + b.length);
      expect(both.layers[l].sumCos).toBeCloseTo(ra.layers[l].sumCos + rb.layers[l].sumCos, 9);
      expect(both.layers[l].sumRelMag).toBeCloseTo(ra.layers[l].sumRelMag + rb.layers[l].sumRelMag, 9);
    }
  });
});

describe('snapshot and restore', () => {
  it('resuming from a snapshot gives bit-identical statistics to running through', async () => {
    const seqs = [golden[0], golden[3].slice(0, 90)];
    const a = session(seqs);
    await a.embed(embeddingRef(ckpt));
    for (const l of [0, 1]) await a.forwardLayer(l, layerTensorRefs(ckpt, l));
    const snap = a.snapshot();
    expect(snap).toHaveLength(a.totalTokens * 64);
    const through = [];
    for (const l of [2, 3, 4]) through.push(await a.forwardLayer(l, layerTensorRefs(ckpt, l)));
    await a.dispose();

    const b = session(seqs, { threads: 1 });
    expect(() => b.restore(new Float32Array(5))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => b.snapshot()).toThrow(expect.objectContaining({ code: 'ERR_STATE' }));
    b.restore(snap);
    const resumed = [];
    for (const l of [2, 3, 4]) resumed.push(await b.forwardLayer(l, layerTensorRefs(ckpt, l)));
    expect(resumed).toEqual(through);
    await b.dispose();
  });
});

describe('process exit with work in flight', () => {
  it('exits cleanly when process.exit() is called while a layer runs', () => {
    // A child process: the addon directly (no TypeScript), exiting from the first progress event
    // while the worker thread is mid-layer.
    const setup = {
      // The sanitizer run (scripts/asan-test.sh) points SHORTGPT_NATIVE_PATH at its own build.
      addon: process.env.SHORTGPT_NATIVE_PATH ?? path.join(repoRoot, 'build', 'Release', 'shortgpt_native.node'),
      spec: nativeModelSpec(ckpt.config),
      sequences: manySequences(4),
      embed: embeddingRef(ckpt),
      weights: layerTensorRefs(ckpt, 0),
    };
    const script = `
      const setup = JSON.parse(process.argv[1]);
      const { Session } = require(setup.addon);
      const s = new Session({ spec: setup.spec, sequences: setup.sequences.map((q) => Int32Array.from(q)), threads: 2 });
      s.embed(setup.embed).then(() => s.forwardLayer(0, setup.weights, () => process.exit(7)));
    `;
    const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(setup)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(7);
  });
});
