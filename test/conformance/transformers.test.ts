/**
 * Conformance with real Hugging Face transformers (test/conformance/hf_forward.py, one Python
 * process for the whole suite): for every generated checkpoint the engine supports and the bundled
 * stories260k,
 *   - Block Influence, angular distance and relative magnitude from scoreLayers equal those of
 *     transformers' float64 forward (hooks on each decoder layer's input and output residual,
 *     before the final norm) within STAT_TOL, absolute;
 *   - perplexity equals transformers' within PPL_TOL, relative, for the whole model and with the
 *     rewrite's layers skipped (= deleted from model.layers on the transformers side);
 *   - the checkpoint the rewrite writes loads with AutoModelForCausalLM.from_pretrained with no
 *     missing or unexpected tensor and gives exactly the logits of the original with those layers
 *     deleted from model.layers (float64 on both sides, same weights, same operations).
 * Baichuan is remote code in the Hub, not a transformers class: hf_forward.py runs it as
 * transformers' LlamaForCausalLM with W_pack split into q/k/v (and Baichuan 2's NormHead).
 *
 * Where no Python with torch and transformers is found (torchPython.ts) the suite is skipped with
 * one line saying why; SHORTGPT_REQUIRE_CONFORMANCE=1 (.ci/run) turns that into a failure.
 * SHORTGPT_CONFORMANCE_REPORT=1 prints the worst differences measured.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { loadTokenizer } from '../../lib/data/tokenizer';
import { perplexity } from '../../lib/eval/perplexity';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { scoreLayers } from '../../lib/scoring/scoreLayers';
import { capture } from '../helpers/io';
import { randomSequences } from '../reference/sequences';
import { tensorByteRange } from '../reference/safetensors64';
import { generateCase } from '../helpers/checkpointCases';
import { CASES, VOCAB, type ConformanceCase } from './cases';
import { findTorchPython, REQUIRE_ENV } from './torchPython';

/** Absolute, on BI, angular distance and relative magnitude (O(1) quantities). */
const STAT_TOL = 1e-6;
/** Relative, on perplexity. */
const PPL_TOL = 1e-6;
/** The first test to await transformers' results waits for the whole Python run (~20 s alone, more on a busy machine). */
const HF_TIMEOUT = 600_000;

const LENGTHS = [1, 5, 37, 70, 130];
const repoRoot = path.resolve(__dirname, '..', '..');
const STORIES = path.join(repoRoot, 'assets', 'stories260k');
const STORIES_TEXT = path.join(repoRoot, 'assets', 'data', 'tinystories-valid.txt');
const SCRIPT = path.join(__dirname, 'hf_forward.py');

interface HfLayer { layer: number; tokens: number; nanCount: number; blockInfluence: number; angularDistance: number; relativeMagnitude: number }
interface HfNll { perplexity: number; meanNll: number; predictions: number }
interface HfModel {
  id: string;
  loader: string;
  loadingInfo: Record<string, string[]>;
  numHiddenLayers: number;
  /** Parameter dtypes of the model as run. */
  dtypes: string[];
  layers: HfLayer[];
  nll: HfNll;
  deleted: Array<HfNll & { delete: number[] }>;
  pruned: Array<{ delete: number[]; loader: string; loadingInfo: Record<string, string[]>; numHiddenLayers: number; configLayers: number; maxAbsLogitDiff: number; maxAbsLogit: number }>;
}
interface HfResult { torch: string; transformers: string; seconds: number; importSeconds: number; models: Array<HfModel & { seconds: number }> }

/** What the suite runs: the generated cases and stories260k (pruned through the CLI). */
interface Subject { name: string; dir: string; out: string; sequences: number[][]; remove: number[]; architecture: string; layers: number; prepare: () => Promise<void> }

const located = findTorchPython();
const required = process.env[REQUIRE_ENV] === '1';
// Straight to stderr: jest drops console output of a suite whose tests are all skipped.
if (!located.found && !required) process.stderr.write(`\ntransformers conformance suite skipped: ${located.reason}\n`);

function runPython(python: string, request: unknown, dir: string): Promise<HfResult> {
  const file = path.join(dir, 'request.json');
  fs.writeFileSync(file, JSON.stringify(request));
  return new Promise((resolve, reject) => {
    // Local directories only: transformers must never try the network.
    const env = { ...process.env, OMP_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' };
    const child = spawn(python, [SCRIPT, file], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${python} ${SCRIPT} exited ${code}:\n${Buffer.concat(err).toString().slice(-4000)}`));
      else resolve(JSON.parse(Buffer.concat(out).toString()) as HfResult);
    });
  });
}

function generatedSubject(root: string, c: ConformanceCase): Subject {
  const slug = c.name.replace(/[^A-Za-z0-9]+/g, '-');
  const dir = path.join(root, slug);
  const out = path.join(root, `${slug}-pruned`);
  const sequences = randomSequences(LENGTHS, VOCAB);
  // Token 0 at the first position makes the whole residual stream zero there (undefined cosines).
  if (c.zeroToken !== undefined) sequences.push([0, 7, 0, 12, 5, 0, 33], [4, 0, 9], [0]);
  return {
    name: c.name, dir, out, sequences, remove: c.remove, architecture: c.opts.architecture, layers: c.opts.layers ?? 4,
    prepare: async () => {
      await generateCase(dir, c);
      if (c.zeroToken !== undefined) {
        const file = path.join(dir, 'model.safetensors');
        const [begin, end] = tensorByteRange(file, 'model.embed_tokens.weight');
        const row = (end - begin) / VOCAB;
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.alloc(row), 0, row, begin + c.zeroToken * row);
        fs.closeSync(fd);
      }
      await rewriteCheckpoint(dir, out, { removeLayers: c.remove });
    },
  };
}

/** stories260k on real text (its own tokenizer), pruned by the CLI as a user would. */
function storiesSubject(root: string): Subject {
  const out = path.join(root, 'stories260k-pruned');
  const subject: Subject = {
    name: 'stories260k (bundled, CLI prune)', dir: STORIES, out, sequences: [], remove: [1, 3], architecture: 'LlamaForCausalLM', layers: 5,
    prepare: async () => {
      const tokenizer = await loadTokenizer(STORIES);
      const ids = tokenizer.encode(fs.readFileSync(STORIES_TEXT, 'utf8').slice(0, 8000));
      let at = 0;
      for (const n of [1, 9, 64, 200, 512]) {
        subject.sequences.push(ids.slice(at, at + n));
        at += n;
      }
      expect(subject.sequences.map((s) => s.length)).toEqual([1, 9, 64, 200, 512]);
      const io = capture();
      const code = await main(['prune', STORIES, '--remove-layers', subject.remove.join(','), '--out', out], io);
      if (code !== 0) throw new Error(`prune exited ${code}: ${io.err()}`);
    },
  };
  return subject;
}

if (!located.found && required) {
  test('transformers conformance suite: a Python with torch and transformers is required here', () => {
    throw new Error(`${REQUIRE_ENV}=1 but ${located.reason}`);
  });
}

(located.found ? describe : describe.skip)('engine and rewrite vs Hugging Face transformers (float64)', () => {
  let root: string;
  let subjects: Subject[];
  let hf: Promise<Map<string, HfModel>>;
  let versions = '';
  const worst = { blockInfluence: 0, angularDistance: 0, relativeMagnitude: 0, ppl: 0, pplDeleted: 0, logits: 0 };
  const measured: Record<string, { stat: number; ppl: number }> = {};

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-conformance-'));
    subjects = [...CASES.map((c) => generatedSubject(root, c)), storiesSubject(root)];
    for (const s of subjects) await s.prepare();
    const request = {
      threads: 1,
      models: subjects.map((s) => ({ id: s.name, dir: s.dir, sequences: s.sequences, delete: [s.remove], pruned: [{ dir: s.out, delete: s.remove }] })),
    };
    if (!located.found) return;
    hf = runPython(located.python, request, root).then((r) => {
      versions = `torch ${r.torch}, transformers ${r.transformers}: ${r.seconds.toFixed(1)} s in Python (import ${r.importSeconds.toFixed(1)} s, slowest model ${Math.max(...r.models.map((m) => m.seconds)).toFixed(1)} s)`;
      return new Map(r.models.map((m) => [m.id, m]));
    });
    // Tests await it; this keeps a failure from being reported as an unhandled rejection first.
    hf.catch(() => undefined);
  }, 120_000);

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
    if (process.env.SHORTGPT_CONFORMANCE_REPORT) console.log(JSON.stringify({ versions, worst, measured }, null, 1));
  });

  test('the features the cases differ by change transformers\' numbers (or agreement would prove nothing)', async () => {
    const models = await hf;
    const bi = (name: string): number[] => models.get(name)!.layers.map((l) => l.blockInfluence);
    const ppl = (name: string): number => models.get(name)!.nll.perplexity;
    // Same seed and shapes, one feature apart: a window, a RoPE scaling.
    for (const [a, b] of [
      ['MistralForCausalLM F32', 'MistralForCausalLM F32 window 33'],
      ['Qwen2ForCausalLM F32', 'Qwen2ForCausalLM F32 sliding window 20'],
      ['LlamaForCausalLM F32', 'LlamaForCausalLM F32 rope linear'],
      ['LlamaForCausalLM BF16', 'LlamaForCausalLM BF16 rope llama3'],
    ]) {
      const diff = Math.max(...bi(a).map((x, i) => Math.abs(x - bi(b)[i])));
      expect(diff).toBeGreaterThan(1e2 * STAT_TOL);
    }
    // A window named with use_sliding_window false is no window, in transformers as in the engine.
    expect(bi('Qwen2ForCausalLM F32 window named but disabled')).toEqual(bi('Qwen2ForCausalLM F32'));
    // Baichuan 2's NormHead changes the logits, not the residual stream (identical weights).
    expect(bi('BaichuanForCausalLM F32')).toEqual(bi('BaiChuanForCausalLM F32 (Baichuan 1)'));
    expect(Math.abs(ppl('BaichuanForCausalLM F32') / ppl('BaiChuanForCausalLM F32 (Baichuan 1)') - 1)).toBeGreaterThan(1e3 * PPL_TOL);
  }, HF_TIMEOUT);

  const names = [...CASES.map((c) => c.name), 'stories260k (bundled, CLI prune)'];
  describe.each(names)('%s', (name) => {
    const subject = (): Subject => subjects.find((s) => s.name === name)!;
    const reference = async (): Promise<HfModel> => (await hf).get(name)!;

    test('Block Influence, angular distance and relative magnitude per layer', async () => {
      const s = subject();
      const ref = await reference();
      // The right transformers class, not a fallback (Baichuan has none: see hf_forward.py).
      expect(ref.loader).toContain(s.architecture === 'BaichuanForCausalLM' ? 'LlamaForCausalLM' : s.architecture);
      expect(ref.loadingInfo).toEqual({});
      expect(ref.dtypes).toEqual(['torch.float64']);
      const engine = await scoreLayers(s.dir, s.sequences, { threads: 2 });
      expect(engine.layers).toHaveLength(ref.layers.length);
      const diff = { blockInfluence: 0, angularDistance: 0, relativeMagnitude: 0 };
      for (const r of ref.layers) {
        const got = engine.layers[r.layer];
        expect(got.tokens).toBe(r.tokens);
        expect(got.nanCount).toBe(r.nanCount);
        for (const k of Object.keys(diff) as Array<keyof typeof diff>) diff[k] = Math.max(diff[k], Math.abs(got[k] - r[k]));
      }
      for (const k of Object.keys(diff) as Array<keyof typeof diff>) worst[k] = Math.max(worst[k], diff[k]);
      measured[name] = { ...measured[name], stat: Math.max(...Object.values(diff)) };
      expect(diff.blockInfluence).toBeLessThan(STAT_TOL);
      expect(diff.angularDistance).toBeLessThan(STAT_TOL);
      expect(diff.relativeMagnitude).toBeLessThan(STAT_TOL);
    }, HF_TIMEOUT);

    test('perplexity, whole and with the rewrite\'s layers skipped (deleted in transformers)', async () => {
      const s = subject();
      const ref = await reference();
      const whole = await perplexity(s.dir, s.sequences, { threads: 2 });
      expect(whole.predictions).toBe(ref.nll.predictions);
      const rel = Math.abs(whole.perplexity / ref.nll.perplexity - 1);
      const skipped = await perplexity(s.dir, s.sequences, { threads: 2, skipLayers: s.remove });
      const refSkipped = ref.deleted[0];
      expect(refSkipped.delete).toEqual(s.remove);
      const relSkipped = Math.abs(skipped.perplexity / refSkipped.perplexity - 1);
      measured[name] = { ...measured[name], ppl: Math.max(rel, relSkipped) };
      worst.ppl = Math.max(worst.ppl, rel);
      worst.pplDeleted = Math.max(worst.pplDeleted, relSkipped);
      expect(rel).toBeLessThan(PPL_TOL);
      expect(relSkipped).toBeLessThan(PPL_TOL);
      // Deleting layers must change the model, or the comparison above would prove nothing.
      expect(Math.abs(refSkipped.meanNll - ref.nll.meanNll)).toBeGreaterThan(1e3 * PPL_TOL);
    }, HF_TIMEOUT);

    test('the rewritten checkpoint loads in transformers and equals the original with those layers deleted', async () => {
      const s = subject();
      const [p] = (await reference()).pruned;
      expect(p.delete).toEqual(s.remove);
      expect(p.loader).toContain(s.architecture === 'BaichuanForCausalLM' ? 'LlamaForCausalLM' : s.architecture);
      // No missing, unexpected or mismatched tensor: from_pretrained initialised nothing at random.
      expect(p.loadingInfo).toEqual({});
      expect(p.numHiddenLayers).toBe(s.layers - s.remove.length);
      expect(p.configLayers).toBe(s.layers - s.remove.length);
      expect(p.maxAbsLogit).toBeGreaterThan(0);
      worst.logits = Math.max(worst.logits, p.maxAbsLogitDiff);
      // Same tensors, same operations, same order in one process: bit-identical logits.
      expect(p.maxAbsLogitDiff).toBe(0);
    }, HF_TIMEOUT);
  });
});
