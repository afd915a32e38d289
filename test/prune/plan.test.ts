import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SafetensorsFile, TensorInfo } from '../../lib/checkpoint/types';
import { editConfig } from '../../lib/prune/configEdit';
import { patchConfigText, topLevelValueSpans } from '../../lib/prune/configText';
import { coalesceSpans, RangeCopier, type CopySpan } from '../../lib/prune/copyRange';
import { formatMapping, planLayerRemoval } from '../../lib/prune/layerPlan';
import { planOutputLayout, renameTensor, shardFileName } from '../../lib/prune/outputLayout';
import { signalExitCode } from '../../lib/prune/signals';
import { tempRoot } from './helpers/rawCheckpoint';

describe('planLayerRemoval', () => {
  it('maps kept layers to contiguous new indices', () => {
    const p = planLayerRemoval(6, [4, 1, 4]);
    expect(p.removed).toEqual([1, 4]);
    expect(p.kept).toEqual([0, 2, 3, 5]);
    expect([...p.mapping]).toEqual([[0, 0], [2, 1], [3, 2], [5, 3]]);
    expect(formatMapping(p)).toBe('0->0, 2->1, 3->2, 5->3');
  });

  it.each([
    [[5], 'ERR_LAYER_INDEX', /layer 5 is out of range.*0\.\.4/],
    [[-1], 'ERR_LAYER_INDEX', /layer -1/],
    [[1.5], 'ERR_LAYER_INDEX', /layer 1\.5/],
    [[], 'ERR_NO_LAYERS_GIVEN', /empty/],
    [[0, 1, 2, 3, 4], 'ERR_REMOVE_ALL_LAYERS', /all 5 layers/],
  ])('rejects %j with %s', (layers, code, message) => {
    expect(() => planLayerRemoval(5, layers, '--remove-layers')).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });
});

describe('editConfig', () => {
  const plan = planLayerRemoval(4, [1, 2]);

  it('updates num_hidden_layers, slices per-layer lists, keeps every other field as is', () => {
    const raw = {
      architectures: ['X'], num_hidden_layers: 4, layer_types: ['a', 'b', 'c', 'd'], mlp_layer_types: [0, 1, 2, 3],
      eos_token_id: [7, 8, 9, 10], rope_scaling: { long_factor: [1, 2, 3, 4] }, hidden_size: 8, other: [1, 2],
    };
    const before = JSON.stringify(raw);
    const e = editConfig(raw, plan);
    expect(JSON.stringify(raw)).toBe(before);
    expect(e.config).toEqual({ ...raw, num_hidden_layers: 2, layer_types: ['a', 'd'], mlp_layer_types: [0, 3] });
    expect(Object.keys(e.config)).toEqual(Object.keys(raw));
    expect(e.slicedFields).toEqual(['layer_types', 'mlp_layer_types']);
  });

  it('moves max_window_layers so every kept layer keeps its attention kind', () => {
    // old layers 0..3 with boundary 2: layers 2,3 are on the far side; kept 0 and 3 -> new boundary 1.
    const e = editConfig({ num_hidden_layers: 4, max_window_layers: 2 }, plan);
    expect(e.config.max_window_layers).toBe(1);
    expect(e.adjustedFields).toEqual(['max_window_layers']);
    for (const [neu, old] of plan.kept.entries()) expect(neu >= 1).toBe(old >= 2);
    expect(editConfig({ num_hidden_layers: 4, max_window_layers: 28 }, plan).config.max_window_layers).toBe(28);
  });
});

function fakeFile(file: string, tensors: Array<[string, number]>): SafetensorsFile {
  let off = 0;
  const infos: TensorInfo[] = tensors.map(([name, bytes]) => {
    const t: TensorInfo = { name, dtype: 'U8', shape: [bytes], file, dataOffset: 64 + off, byteLength: bytes };
    off += bytes;
    return t;
  });
  return { file, fileSize: 64 + off, headerLength: 56, dataStart: 64, metadata: { format: 'pt', [`from`]: file }, tensors: infos };
}

describe('planOutputLayout', () => {
  const plan = planLayerRemoval(4, [1]);

  it('renames only the model.layers.N. prefix and drops removed layers', () => {
    expect(renameTensor('model.layers.3.mlp.up_proj.weight', plan, 'f')).toBe('model.layers.2.mlp.up_proj.weight');
    expect(renameTensor('model.layers.1.mlp.up_proj.weight', plan, 'f')).toBeNull();
    expect(renameTensor('model.layers.0.self_attn.layers.3.x', plan, 'f')).toBe('model.layers.0.self_attn.layers.3.x');
    expect(renameTensor('lm_head.weight', plan, 'f')).toBe('lm_head.weight');
    expect(() => renameTensor('model.layers.4.mlp.up_proj.weight', plan, 'shard.safetensors')).toThrow(
      expect.objectContaining({ code: 'ERR_TENSOR_LAYER', message: expect.stringMatching(/shard\.safetensors.*model\.layers\.4\.mlp/) }),
    );
  });

  it('keeps a single file single, with its name and order', () => {
    const f = fakeFile('/m/model.safetensors', [['model.embed_tokens.weight', 10], ['model.layers.0.a', 4], ['model.layers.1.a', 4], ['model.layers.2.a', 4], ['model.layers.3.a', 4], ['model.norm.weight', 2]]);
    const l = planOutputLayout([f], false, plan);
    expect(l.files.map((x) => x.name)).toEqual(['model.safetensors']);
    expect(l.files[0]!.tensors.map((t) => t.name)).toEqual(['model.embed_tokens.weight', 'model.layers.0.a', 'model.layers.1.a', 'model.layers.2.a', 'model.norm.weight']);
    expect(l.removedTensors).toEqual(['model.layers.1.a']);
    expect(l.totalBytes).toBe(24);
  });

  it('repacks shards in source order, none larger than the largest source shard', () => {
    const files = [
      fakeFile('/m/model-00002-of-00003.safetensors', [['model.layers.1.a', 8], ['model.layers.2.a', 8]]),
      fakeFile('/m/model-00001-of-00003.safetensors', [['model.embed_tokens.weight', 8], ['model.layers.0.a', 8]]),
      fakeFile('/m/model-00003-of-00003.safetensors', [['model.layers.3.a', 8], ['model.norm.weight', 1], ['lm_head.weight', 20]]),
    ];
    const l = planOutputLayout(files, true, plan);
    expect(l.files.map((f) => [f.name, f.tensors.map((t) => t.name)])).toEqual([
      ['model-00001-of-00002.safetensors', ['model.embed_tokens.weight', 'model.layers.0.a', 'model.layers.1.a']],
      ['model-00002-of-00002.safetensors', ['model.layers.2.a', 'model.norm.weight', 'lm_head.weight']],
    ]);
    for (const f of l.files) expect(f.dataBytes).toBeLessThanOrEqual(29);
    expect(l.files[0]!.sourceMetadata.from).toBe('/m/model-00001-of-00003.safetensors');
    expect(shardFileName(12, 345)).toBe('model-00012-of-00345.safetensors');
  });
});

describe('RangeCopier', () => {
  it('copies spans exactly across chunk boundaries, reusing two small buffers', async () => {
    const dir = tempRoot('sgpt-copy-');
    try {
      const src = Buffer.alloc(1000);
      for (let i = 0; i < src.length; i++) src[i] = (i * 7919) % 251;
      fs.writeFileSync(path.join(dir, 'src'), src);
      const srcFd = fs.openSync(path.join(dir, 'src'), 'r');
      const dstFd = fs.openSync(path.join(dir, 'dst'), 'w+');
      const spans: CopySpan[] = [
        { srcFd, srcPath: 'src', srcOffset: 0, dstOffset: 0, length: 100 },
        { srcFd, srcPath: 'src', srcOffset: 100, dstOffset: 100, length: 233 },
        { srcFd, srcPath: 'src', srcOffset: 500, dstOffset: 333, length: 500 },
        { srcFd, srcPath: 'src', srcOffset: 0, dstOffset: 833, length: 0 },
      ];
      const merged = coalesceSpans(spans);
      expect(merged.map((s) => [s.srcOffset, s.dstOffset, s.length])).toEqual([[0, 0, 333], [500, 333, 500], [0, 833, 0]]);
      const copier = new RangeCopier(7);
      let seen = 0;
      for (const s of merged) await copier.copy(s, dstFd, undefined, (n) => (seen += n));
      fs.closeSync(srcFd);
      fs.closeSync(dstFd);
      expect(seen).toBe(833);
      expect(fs.readFileSync(path.join(dir, 'dst')).equals(Buffer.concat([src.subarray(0, 333), src.subarray(500, 1000)]))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the source file when it is shorter than the span, and stops when aborted', async () => {
    const dir = tempRoot('sgpt-copy-');
    try {
      fs.writeFileSync(path.join(dir, 'src'), Buffer.alloc(50, 1));
      const srcFd = fs.openSync(path.join(dir, 'src'), 'r');
      const dstFd = fs.openSync(path.join(dir, 'dst'), 'w+');
      const copier = new RangeCopier(16);
      await expect(copier.copy({ srcFd, srcPath: '/x/shard.safetensors', srcOffset: 10, dstOffset: 0, length: 100 }, dstFd)).rejects.toMatchObject({
        code: 'ERR_SAFETENSORS_TRUNCATED',
        message: expect.stringContaining('/x/shard.safetensors'),
      });
      const ac = new AbortController();
      ac.abort(new Error('test'));
      await expect(copier.copy({ srcFd, srcPath: 'src', srcOffset: 0, dstOffset: 0, length: 40 }, dstFd, ac.signal)).rejects.toMatchObject({ code: 'ERR_ABORTED' });
      fs.closeSync(srcFd);
      fs.closeSync(dstFd);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('signalExitCode', () => {
  it('is 128 + the signal number', () => {
    expect(signalExitCode('SIGINT')).toBe(130);
    expect(signalExitCode('SIGTERM')).toBe(143);
  });
});

describe('patchConfigText', () => {
  const plan = planLayerRemoval(4, [1, 2]);

  it('replaces only the changed values, keeping every other spelling and the layout', () => {
    const text = '{\n  "rms_norm_eps": 1e-05,\n  "num_hidden_layers": 4,\n  "layer_types": [\n    "full_attention",\n    "sliding_attention",\n    "full_attention",\n    "sliding_attention"\n  ],\n  "rope_theta": 10000.0,\n  "s": "a,]}\\"[{"\n}\n';
    const raw = JSON.parse(text) as Record<string, unknown>;
    const out = patchConfigText(text, raw, editConfig(raw, plan).config);
    expect(out).toBe('{\n  "rms_norm_eps": 1e-05,\n  "num_hidden_layers": 2,\n  "layer_types": [\n    "full_attention",\n    "sliding_attention"\n  ],\n  "rope_theta": 10000.0,\n  "s": "a,]}\\"[{"\n}\n');
  });

  it('re-emits the whole document when the text cannot be patched', () => {
    const text = '{"num_hidden_layers": 4, "x": 1, "x": 2}';
    const edited = { num_hidden_layers: 2, x: 2 };
    expect(patchConfigText(text, { num_hidden_layers: 4, x: 2 }, edited)).toBe(`${JSON.stringify(edited, null, 2)}\n`);
    expect(topLevelValueSpans('{"a": [1, {"b": "]"}], "c": null}')).toEqual(new Map([['a', [6, 21]], ['c', [28, 32]]]));
  });
});
