/**
 * Rewrite benchmark: how close `rewriteCheckpoint` comes to a plain copy of the same bytes.
 *
 *   npm run compile:ts && node dist/scripts/bench-rewrite.js [--gib 2] [--shard-mib 512] [--runs 2] [--dir /tmp]
 *
 * Generates a synthetic sharded Llama checkpoint (hidden 2048, F16, TinyLlama-like layer shape,
 * enough layers for --gib) into a temporary directory under --dir, then times, alternating,
 * (a) a plain copy of every file (fs.copyFile, an in-kernel copy, then fsync of each file) and
 * (b) the rewrite removing two layers (which also fsyncs every output file before its rename).
 * Both run in a child process of their own, so the peak RSS printed is that operation's alone.
 * Page cache: the source is read once before timing, so both operations run with it warm (the
 * fair comparison on a machine whose RAM holds the model; a cold-cache figure would mostly time
 * the disk). MB/s is bytes written / seconds, with 1 MB = 1e6 bytes. Everything generated is
 * removed at the end, also on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { globalTensorSpecs, layerTensorSpecs } from '../lib/checkpoint/architectures';
import { resolveConfig } from '../lib/checkpoint/config';
import { f32ToF16Bits } from '../lib/checkpoint/halfFloat';
import { encodeSafetensorsHeader } from '../lib/checkpoint/safetensorsHeader';
import { rewriteCheckpoint } from '../lib/prune/rewrite';
import { generatedConfigJson } from './generate-checkpoint';
import { mulberry32, normalSource } from './gen-random';

const BLOCK_BYTES = 1 << 20;

interface Planned {
  name: string;
  shape: number[];
  bytes: number;
}

/** A 1 MiB block of F16 values ~ N(0, 0.02), the same for a given seed. */
function randomF16Block(seed: number): Buffer {
  const normal = normalSource(mulberry32(seed));
  const block = Buffer.alloc(BLOCK_BYTES);
  for (let i = 0; i < BLOCK_BYTES / 2; i++) block.writeUInt16LE(f32ToF16Bits(normal() * 0.02), 2 * i);
  return block;
}

/**
 * Writes a sharded checkpoint of about `targetBytes`. Tensor data repeats one random block,
 * started at a different offset per tensor so no two tensors are identical; the cost is the
 * disk's, not a JavaScript loop per element.
 */
export function generate(dir: string, targetBytes: number, shardBytes: number): { layers: number; tensorBytes: number; files: number } {
  const layerBytes = (hidden: number, inter: number, kv: number) => 2 * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden);
  const hidden = 2048;
  const inter = 5632;
  const vocab = 32000;
  const kvDim = 4 * (hidden / 32);
  const layers = Math.max(3, Math.round((targetBytes - 2 * 2 * vocab * hidden) / layerBytes(hidden, inter, kvDim)));
  const raw = generatedConfigJson({
    architecture: 'LlamaForCausalLM', dtype: 'F16', layers, hiddenSize: hidden, intermediateSize: inter, vocabSize: vocab,
    numAttentionHeads: 32, numKeyValueHeads: 4, maxPositionEmbeddings: 2048,
  });
  const config = resolveConfig(raw, path.join(dir, 'config.json'));
  const planned: Planned[] = [];
  const add = (name: string, shape: number[]) => planned.push({ name, shape, bytes: 2 * shape.reduce((a, d) => a * d, 1) });
  const globals = globalTensorSpecs(config);
  add(globals[0]!.name, globals[0]!.shape);
  for (let l = 0; l < layers; l++) for (const s of layerTensorSpecs(config, l)) add(s.name, s.shape);
  for (const g of globals.slice(1)) add(g.name, g.shape);

  const shards: Planned[][] = [[]];
  let inShard = 0;
  for (const t of planned) {
    if (inShard > 0 && inShard + t.bytes > shardBytes) {
      shards.push([]);
      inShard = 0;
    }
    shards[shards.length - 1]!.push(t);
    inShard += t.bytes;
  }
  const block = randomF16Block(20240307);
  const doubled = Buffer.concat([block, block]);
  const weightMap: Record<string, string> = {};
  let tensorIndex = 0;
  shards.forEach((members, k) => {
    const name = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const fd = fs.openSync(path.join(dir, name), 'w');
    try {
      fs.writeSync(fd, encodeSafetensorsHeader(members.map((t) => ({ name: t.name, dtype: 'F16', shape: t.shape, byteLength: t.bytes })), { format: 'pt' }));
      for (const t of members) {
        weightMap[t.name] = name;
        const start = ((tensorIndex++ * 4099) % (BLOCK_BYTES / 2)) * 2;
        for (let done = 0; done < t.bytes; ) {
          const n = Math.min(BLOCK_BYTES, t.bytes - done);
          fs.writeSync(fd, doubled, start, n);
          done += n;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  });
  const tensorBytes = planned.reduce((a, t) => a + t.bytes, 0);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: tensorBytes }, weight_map: weightMap }, null, 2));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'LlamaTokenizer' }));
  return { layers, tensorBytes, files: shards.length };
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) total += e.isDirectory() ? dirBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size;
  return total;
}

/**
 * Flushes the generated files to disk (so their write-back does not compete with the timed
 * runs) and reads every file once, so both operations start from the same warm page cache.
 */
function warm(dir: string): void {
  const buf = Buffer.allocUnsafe(16 << 20);
  for (const name of fs.readdirSync(dir)) {
    const fd = fs.openSync(path.join(dir, name), 'r');
    try {
      fs.fsyncSync(fd);
      while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}

interface ChildReport {
  seconds: number;
  bytes: number;
  maxRssBytes: number;
}

/** Child side: one timed operation, reported as one JSON line. */
async function child(op: string, src: string, out: string): Promise<void> {
  const t0 = process.hrtime.bigint();
  if (op === 'copy') {
    fs.mkdirSync(out);
    for (const name of fs.readdirSync(src)) {
      fs.copyFileSync(path.join(src, name), path.join(out, name));
      const fd = fs.openSync(path.join(out, name), 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
  } else {
    await rewriteCheckpoint(src, out, { removeLayers: [1, 2] });
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const report: ChildReport = { seconds, bytes: dirBytes(out), maxRssBytes: process.resourceUsage().maxRSS * 1024 };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

function runChild(op: string, src: string, out: string): ChildReport {
  const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--child', op, src, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${op} failed (status ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildReport;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { gib: { type: 'string' }, 'shard-mib': { type: 'string' }, runs: { type: 'string' }, dir: { type: 'string' }, child: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: false,
  });
  if (typeof values.child === 'string') {
    const rest = argv.slice(argv.indexOf('--child') + 2);
    await child(values.child, rest[0]!, rest[1]!);
    return 0;
  }
  if (values.help) {
    process.stdout.write('Usage: node dist/scripts/bench-rewrite.js [--gib 2] [--shard-mib 512] [--runs 2] [--dir DIR]\n');
    return 0;
  }
  const num = (v: unknown, d: number, what: string) => {
    const n = v === undefined ? d : Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} expects a positive number, got '${String(v)}'`);
    return n;
  };
  const gib = num(values.gib, 2, 'gib');
  const shardMib = num(values['shard-mib'], 512, 'shard-mib');
  const runs = Math.round(num(values.runs, 2, 'runs'));
  const root = fs.mkdtempSync(path.join(typeof values.dir === 'string' ? values.dir : os.tmpdir(), 'shortgpt-bench-'));
  const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    const t0 = Date.now();
    const g = generate(src, gib * 2 ** 30, shardMib * 2 ** 20);
    process.stdout.write(`generated ${(dirBytes(src) / 2 ** 30).toFixed(2)} GiB: Llama F16, hidden 2048, ${g.layers} layers, ${g.files} shards, in ${((Date.now() - t0) / 1000).toFixed(1)} s (${root})\n`);
    warm(src);
    const rows: Array<{ op: string; r: ChildReport }> = [];
    for (let i = 0; i < runs; i++) {
      // ABBA order, so drift (write-back of earlier runs, other load) does not favour either.
      for (const op of i % 2 === 0 ? ['copy', 'rewrite'] : ['rewrite', 'copy']) {
        const out = path.join(root, `${op}-${i}`);
        rows.push({ op, r: runChild(op, src, out) });
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
    const best = (op: string) => rows.filter((x) => x.op === op).reduce((a, b) => (b.r.bytes / b.r.seconds > a.r.bytes / a.r.seconds ? b : a));
    const copyRate = best('copy').r.bytes / best('copy').r.seconds;
    // A VM disk's fsync times swing widely: the median of each side is the steadier comparison.
    const median = (op: string) => {
      const rates = rows.filter((x) => x.op === op).map((x) => x.r.bytes / x.r.seconds).sort((a, b) => a - b);
      const m = rates.length >> 1;
      return rates.length % 2 ? rates[m] : (rates[m - 1] + rates[m]) / 2;
    };
    const lines = [
      `${'operation'.padEnd(24)}${'bytes'.padStart(15)}${'seconds'.padStart(10)}${'MB/s'.padStart(10)}${'vs copy'.padStart(9)}${'peak RSS'.padStart(12)}`,
      ...rows.map(({ op, r }, i) => {
        const rate = r.bytes / r.seconds;
        const label = `${op === 'copy' ? 'plain copy' : 'rewrite -2 layers'} (run ${Math.floor(i / 2) + 1})`;
        return `${label.padEnd(24)}${String(r.bytes).padStart(15)}${r.seconds.toFixed(2).padStart(10)}${(rate / 1e6).toFixed(0).padStart(10)}${(rate / copyRate).toFixed(2).padStart(9)}${`${(r.maxRssBytes / 2 ** 20).toFixed(0)} MiB`.padStart(12)}`;
      }),
      `best rewrite / best copy throughput: ${((best('rewrite').r.bytes / best('rewrite').r.seconds) / copyRate).toFixed(2)}; ` +
        `median / median: ${(median('rewrite') / median('copy')).toFixed(2)} (target >= 0.80); both warm page cache, both fsync their output`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e: unknown) => {
      process.stderr.write(`bench-rewrite: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
