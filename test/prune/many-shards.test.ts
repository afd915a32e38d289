/**
 * A checkpoint split into 30 shards (as 70B models ship), end to end: sharded scoring + merge
 * + prune --scores on it, and the rewrite keeps the sharded layout: an index naming every
 * tensor, shards in save_pretrained's names, none larger than the largest source shard, fewer
 * only by the bytes removed. Checked with the independent reader in helpers/rawCheckpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { runCli, type CliRun } from '../hostile/helpers/cliProcess';
import { readRawCheckpoint, tempRoot } from './helpers/rawCheckpoint';

const SHARDS = 30;
let root: string;
let src: string;

const ok = (r: CliRun): CliRun => {
  if (r.status !== 0) throw new Error(`exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

beforeAll(async () => {
  root = tempRoot('sgpt-many-shards-');
  src = path.join(root, 'src');
  await generateCheckpoint(src, { architecture: 'LlamaForCausalLM', dtype: 'BF16', shards: SHARDS, layers: 6, seed: 11, hiddenSize: 32, intermediateSize: 64, vocabSize: 96, numAttentionHeads: 4, numKeyValueHeads: 2 });
  // Token ids for the generated vocabulary (it has no tokenizer.json): 12 windows of 16.
  const ids = Array.from({ length: 12 }, (_, w) => Array.from({ length: 16 }, (_, i) => (w * 7 + i * 5) % 96));
  fs.writeFileSync(path.join(root, 'calib.json'), JSON.stringify(ids));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

it(`${SHARDS} weight shards: sharded scores merge, prune --scores rewrites with the index and shard sizes kept`, async () => {
  const data = ['--calib', path.join(root, 'calib.json'), '--seq-len', '16', '--threads', '1', '--quiet'];
  const parts = [0, 1, 2].map((i) => path.join(root, `p${i}.json`));
  for (let i = 0; i < 3; i++) ok(await runCli(['score', src, ...data, '--shard', `${i}/3`, '--partial', parts[i]]));
  const partial = JSON.parse(fs.readFileSync(parts[0], 'utf8')) as { provenance: { model: { files: Array<{ name: string }> } } };
  expect(partial.provenance.model.files).toHaveLength(SHARDS);
  const scores = path.join(root, 'scores.json');
  ok(await runCli(['merge', ...parts, '--out', scores, '--quiet']));
  const single = JSON.parse(ok(await runCli(['score', src, ...data, '--json'])).stdout) as { layers: Array<{ bi: number; rank: number }> };
  const merged = JSON.parse(fs.readFileSync(scores, 'utf8')) as typeof single;
  single.layers.forEach((l, i) => {
    expect(merged.layers[i].rank).toBe(l.rank);
    expect(Math.abs(merged.layers[i].bi - l.bi) / l.bi).toBeLessThan(1e-12);
  });

  const out = path.join(root, 'out');
  ok(await runCli(['prune', src, '--scores', scores, '--remove', '2', '--out', out, '--quiet']));
  const s = readRawCheckpoint(src);
  const o = readRawCheckpoint(out);
  const dataBytes = (f: { tensors: Map<string, { bytes: Buffer }> }): number => [...f.tensors.values()].reduce((a, t) => a + t.bytes.length, 0);
  const maxSource = Math.max(...[...s.files.values()].map(dataBytes));
  const n = o.files.size;
  expect([...o.files.keys()].sort()).toEqual(Array.from({ length: n }, (_, k) => `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`));
  for (const f of o.files.values()) expect(dataBytes(f) <= maxSource || f.tensors.size === 1).toBe(true);
  // Two of six layers gone: about a third fewer bytes, so about a third fewer shards of the same size.
  const outBytes = [...o.files.values()].reduce((a, f) => a + dataBytes(f), 0);
  expect(n).toBeGreaterThanOrEqual(Math.ceil(outBytes / maxSource));
  expect(n).toBeLessThan(SHARDS);
  const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  expect(index.metadata.total_size).toBe(outBytes);
  expect(Object.keys(index.weight_map)).toHaveLength(o.tensors.size);
  for (const [name, file] of Object.entries(index.weight_map)) expect(o.files.get(file)!.tensors.has(name)).toBe(true);
  expect(o.tensors.size).toBe(s.tensors.size - 2 * [...s.tensors.keys()].filter((k) => k.startsWith('model.layers.0.')).length);
});
