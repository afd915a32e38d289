/**
 * --heal lstsq (issue 13) vs Hugging Face transformers: a healed checkpoint (standard names and
 * shapes, one down_proj per cut replaced) loads in transformers with nothing initialised at
 * random, and our engine's perplexity and per-layer statistics on it equal transformers' (float64,
 * hf_forward.py) within the suite's tolerances. Skipped like transformers.test.ts where no Python
 * with torch and transformers is found.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { main } from '../../lib/cli/main';
import { loadTokenizer } from '../../lib/data/tokenizer';
import { perplexity } from '../../lib/eval/perplexity';
import { healCut } from '../../lib/prune/heal';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { capture } from '../helpers/io';
import { randomSequences } from '../reference/sequences';
import { findTorchPython, REQUIRE_ENV } from './torchPython';

const STAT_TOL = 1e-6;
const PPL_TOL = 1e-6;
const HF_TIMEOUT = 600_000;
const VOCAB = 96;
const repoRoot = path.resolve(__dirname, '..', '..');
const STORIES = path.join(repoRoot, 'assets', 'stories260k');
const STORIES_TEXT = path.join(repoRoot, 'assets', 'data', 'tinystories-valid.txt');
const SCRIPT = path.join(__dirname, 'hf_forward.py');

interface HfModel {
  id: string;
  loadingInfo: Record<string, string[]>;
  layers: Array<{ blockInfluence: number; angularDistance: number; relativeMagnitude: number }>;
  nll: { perplexity: number; meanNll: number; predictions: number };
  deleted: Array<{ meanNll: number; delete: number[] }>;
}

const located = findTorchPython();
const required = process.env[REQUIRE_ENV] === '1';

function runPython(python: string, request: unknown, dir: string): Promise<{ models: HfModel[] }> {
  const file = path.join(dir, 'heal-request.json');
  fs.writeFileSync(file, JSON.stringify(request));
  return new Promise((resolve, reject) => {
    const child = spawn(python, [SCRIPT, file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => (code !== 0 ? reject(new Error(`${SCRIPT} exited ${code}:\n${Buffer.concat(err).toString().slice(-4000)}`)) : resolve(JSON.parse(Buffer.concat(out).toString()))));
  });
}

if (!located.found && required) {
  test('heal conformance: a Python with torch and transformers is required here', () => {
    throw new Error(`${REQUIRE_ENV}=1 but ${located.reason}`);
  });
}

(located.found ? describe : describe.skip)('healed checkpoints vs Hugging Face transformers (float64)', () => {
  let root: string;
  const subjects: Array<{ id: string; source: string; healed: string; removed: number[]; sequences: number[][] }> = [];
  let hf: Map<string, HfModel>;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-heal-conf-'));
    // stories260k healed by the CLI, as a user would: --remove 2 --heal lstsq.
    const text = fs.readFileSync(STORIES_TEXT, 'utf8');
    const calib = path.join(root, 'calib.txt');
    fs.writeFileSync(calib, text.slice(0, 60000));
    const storiesOut = path.join(root, 'stories-healed');
    const io = capture();
    const code = await main(['prune', STORIES, '--calib', calib, '--remove', '2', '--heal', 'lstsq', '--device', 'cpu', '--threads', '2', '--json', '--out', storiesOut], io);
    if (code !== 0) throw new Error(`prune exited ${code}: ${io.err()}`);
    const removed = JSON.parse(fs.readFileSync(path.join(storiesOut, 'report.json'), 'utf8')).removedLayers as number[];
    const ids = (await loadTokenizer(STORIES)).encode(text.slice(60000, 68000));
    subjects.push({ id: 'stories260k healed', source: STORIES, healed: storiesOut, removed, sequences: [ids.slice(0, 300), ids.slice(300, 420), ids.slice(420, 425)] });
    // A bf16, sharded Qwen3 with two cuts, healed through the library and written by the rewrite.
    const gen = path.join(root, 'qwen3-bf16');
    await generateCheckpoint(gen, { architecture: 'Qwen3ForCausalLM', dtype: 'BF16', layers: 5, shards: 2, vocabSize: VOCAB, maxPositionEmbeddings: 256 });
    const genRemoved = [1, 3];
    const calibSeqs = randomSequences([120, 90, 60], VOCAB, 21).map((s) => Int32Array.from(s));
    const healed = await healCut(await openCheckpoint(gen), [calibSeqs], genRemoved, 0, { engine: { threads: 2 } });
    const genOut = path.join(root, 'qwen3-bf16-healed');
    await rewriteCheckpoint(gen, genOut, { removeLayers: genRemoved, replaceTensors: healed.replace });
    subjects.push({ id: 'Qwen3 BF16 healed', source: gen, healed: genOut, removed: genRemoved, sequences: randomSequences([1, 37, 130], VOCAB, 4) });

    const request = {
      threads: 1,
      models: subjects.flatMap((s) => [
        { id: s.id, dir: s.healed, sequences: s.sequences },
        { id: `${s.id} source`, dir: s.source, sequences: s.sequences, delete: [s.removed] },
      ]),
    };
    const r = await runPython((located as { python: string }).python, request, root);
    hf = new Map(r.models.map((m) => [m.id, m]));
  }, HF_TIMEOUT);

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test.each(['stories260k healed', 'Qwen3 BF16 healed'])('%s: loads cleanly; perplexity and layer statistics equal transformers\'', async (id) => {
    const s = subjects.find((x) => x.id === id)!;
    const ref = hf.get(id)!;
    expect(ref.loadingInfo).toEqual({});
    const ours = await perplexity(s.healed, s.sequences, { threads: 2 });
    expect(ours.predictions).toBe(ref.nll.predictions);
    expect(Math.abs(ours.perplexity / ref.nll.perplexity - 1)).toBeLessThan(PPL_TOL);
    const scores = await scoreLayers(s.healed, s.sequences, { threads: 2 });
    scores.layers.forEach((l, i) => {
      expect(Math.abs(l.blockInfluence - ref.layers[i].blockInfluence)).toBeLessThan(STAT_TOL);
      expect(Math.abs(l.angularDistance - ref.layers[i].angularDistance)).toBeLessThan(STAT_TOL);
    });
    // Healing changed the model: transformers' healed NLL differs from plain deletion's.
    const plain = hf.get(`${id} source`)!.deleted[0];
    expect(plain.delete).toEqual(s.removed);
    expect(Math.abs(plain.meanNll - ref.nll.meanNll)).toBeGreaterThan(1e3 * PPL_TOL);
  }, HF_TIMEOUT);
});
