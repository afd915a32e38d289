/**
 * Issue 14: every strategy prunes each architecture added in that issue end to end through the
 * library's `prune` (calibration from a raw token stream, since generated checkpoints carry no
 * tokenizer), and the written model computes exactly what the original computes with those
 * layers skipped (perplexity bit for bit, the skip = rewrite property).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { perplexity } from '../../lib/eval/perplexity';
import { prune } from '../../lib/prune/prune';
import { generateCheckpoint, type GenerateOptions } from '../../scripts/generate-checkpoint';
import { randomSequences } from '../reference/sequences';

const VOCAB = 96;
const ARCHITECTURES = [
  'GraniteForCausalLM', 'SmolLM3ForCausalLM', 'Olmo2ForCausalLM', 'Phi3ForCausalLM',
  'Gemma2ForCausalLM', 'Gemma3ForCausalLM', 'MixtralForCausalLM', 'Qwen3MoeForCausalLM',
] as const;
const STRATEGIES = ['one-shot', 'block', 'iterative'] as const;

let root: string;
let calib: string;
const evalSequences = randomSequences([9, 23, 40, 17], VOCAB, 7);

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-arch-strategies-'));
  // 12 windows of 16 tokens, as a little-endian uint16 token stream.
  const ids = randomSequences([12 * 16], VOCAB, 3)[0];
  calib = path.join(root, 'calib.bin');
  fs.writeFileSync(calib, Buffer.from(Uint16Array.from(ids).buffer));
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe.each(ARCHITECTURES)('%s', (architecture) => {
  const dir = (): string => path.join(root, architecture);
  beforeAll(async () => {
    const opts: GenerateOptions = { architecture, dtype: 'BF16', layers: 4, vocabSize: VOCAB, hiddenSize: 64, maxPositionEmbeddings: 256 };
    await generateCheckpoint(dir(), opts);
  });

  test.each(STRATEGIES)('%s: prunes 2 layers, and the written model equals the original with them skipped', async (strategy) => {
    const out = path.join(root, `${architecture}-${strategy}`);
    const r = await prune(dir(), { calib, tokenDType: 'uint16', seqLen: 16, remove: 2, strategy, out, threads: 2 });
    const removed = r.report.layers.filter((l) => l.removed).map((l) => l.layer).sort((a, b) => a - b);
    expect(removed).toHaveLength(2);
    if (strategy === 'block') expect(removed[1] - removed[0]).toBe(1);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { num_hidden_layers: number };
    expect(config.num_hidden_layers).toBe(2);
    const skipped = await perplexity(dir(), evalSequences, { skipLayers: removed, threads: 2 });
    const written = await perplexity(out, evalSequences, { threads: 2 });
    expect(written.perplexity).toBe(skipped.perplexity);
    expect(written.logitsSum).toBe(skipped.logitsSum);
  });
});
