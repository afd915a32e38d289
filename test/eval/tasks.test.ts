/**
 * Issue 12 §2: multiple-choice task accuracy. Loglikelihoods are checked against the float64
 * reference forward pass (test/reference), the request encoding against the harness's rules,
 * the metrics against hand computations, and the bundled task's accuracy against what
 * lm-evaluation-harness 0.4.13 itself gives (scripts/lm_eval_check.py; the conformance suite
 * test/conformance/lm-eval.test.ts reruns that comparison where the harness is installed).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { main } from '../../lib/cli/main';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenizer';
import { encodeNoSpecial, encodePair, requestSequence } from '../../lib/eval/encodePair';
import { engineLogprobs, tokenBatches, type LogprobSource } from '../../lib/eval/taskLogprobs';
import { taskItem } from '../../lib/eval/taskFormats';
import { argmax, evaluateTasks, loadTaskFile, meanAndStderr, scoreItem, type TaskSpec } from '../../lib/eval/tasks';
import { ShortGptError } from '../../lib/errors';
import { capture } from '../helpers/io';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { referenceLogits } from '../reference/forward64';

const bundledTask = path.join(repoRoot, 'assets', 'tasks', 'tinystories-next-sentence.jsonl');

/** log p(next token) per row from the float64 reference's logits (log-sum-exp in double). */
function referenceLogprobs(skip: readonly number[] = []): LogprobSource {
  return async (ckpt: Checkpoint, sequences: readonly Int32Array[]) =>
    sequences.map((seq) => {
      const ids = Array.from(seq);
      const V = ckpt.config.vocabSize;
      const logits = referenceLogits(ckpt.dir, ids, skip);
      const out = new Float64Array(ids.length).fill(NaN);
      for (let r = 0; r + 1 < ids.length; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let s = 0;
        for (const v of row) s += Math.exp(v - max);
        out[r] = row[ids[r + 1]] - max - Math.log(s);
      }
      return out;
    });
}

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(stories260kDir);
});

describe('encodePair: requests encoded as lm-evaluation-harness 0.4.13 encodes them', () => {
  it('encodes context + continuation whole and splits at the context\'s own token count (BOS from the tokenizer)', () => {
    const p = encodePair(tok, 'The cat sat', ' on the mat.');
    expect(p.context).toEqual(tok.encode('The cat sat'));
    expect(p.context[0]).toBe(1); // stories260k's tokenizer adds BOS, as transformers' encode does
    expect([...p.context, ...p.continuation]).toEqual(tok.encode('The cat sat on the mat.'));
  });

  it('moves the context\'s trailing whitespace to the continuation', () => {
    expect(encodePair(tok, 'The cat sat  ', 'on the mat.')).toEqual(encodePair(tok, 'The cat sat', '  on the mat.'));
  });

  it('an empty context is conditioned on the prefix token (BOS), the continuation without special tokens', () => {
    const p = encodePair(tok, '', ' Once upon a time');
    expect(p.context).toEqual([1]);
    expect(p.continuation).toEqual(encodeNoSpecial(tok, ' Once upon a time'));
    expect(p.continuation[0]).not.toBe(1);
  });

  it('a context that already starts with the BOS text gets no second BOS', () => {
    const p = encodePair(tok, '<s> The cat', ' sat.');
    expect(p.context.filter((id) => id === 1)).toHaveLength(1);
  });

  it('keeps the last maxLength + 1 tokens, as _loglikelihood_tokens does', () => {
    const pair = { context: [1, 10, 11, 12, 13], continuation: [20, 21] };
    expect(requestSequence(pair, 100)).toEqual({ sequence: [1, 10, 11, 12, 13, 20, 21], scored: 2 });
    expect(requestSequence(pair, 4)).toEqual({ sequence: [11, 12, 13, 20, 21], scored: 2 });
  });
});

describe('task formats (the harness task configs\' doc_to_text / doc_to_choice / doc_to_target)', () => {
  it('hellaswag: activity label, ctx_a + capitalized ctx_b, preprocessed endings', () => {
    const item = taskItem({ activity_label: 'Baking', ctx_a: 'A man opens the oven.', ctx_b: 'he TAKES out a tray', endings: ['and smiles [title] now.', ' then  leaves.'], label: '1' }, 'hellaswag', 'x');
    expect(item).toEqual({ context: 'Baking: A man opens the oven. He takes out a tray', choices: ['and smiles. now.', 'then leaves.'], gold: 1 });
    expect(taskItem({ ctx: 'Plain ctx.', endings: ['a', 'b'], label: 0 }, 'hellaswag', 'x').context).toBe('Plain ctx.');
  });

  it('arc: "Question: ...\\nAnswer:", choices.text, the answer key\'s index', () => {
    expect(taskItem({ question: 'Why?', choices: { text: ['x', 'y', 'z'], label: ['A', 'B', 'C'] }, answerKey: 'C' }, 'arc', 'x')).toEqual({ context: 'Question: Why?\nAnswer:', choices: ['x', 'y', 'z'], gold: 2 });
  });

  it('piqa: the goal as a question, sol1/sol2', () => {
    expect(taskItem({ goal: 'Open a jar', sol1: 'twist', sol2: 'pull', label: 0 }, 'piqa', 'x')).toEqual({ context: 'Question: Open a jar\nAnswer:', choices: ['twist', 'pull'], gold: 0 });
  });

  it('mmlu: the subject\'s description, lettered choices, letters scored', () => {
    const item = taskItem({ question: ' What is 2+2? ', subject: 'elementary_mathematics', choices: ['3', '4', '5', '6'], answer: 1 }, 'mmlu', 'x');
    expect(item.context).toBe('The following are multiple choice questions (with answers) about elementary mathematics.\n\nWhat is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:');
    expect(item.choices).toEqual(['A', 'B', 'C', 'D']);
    expect(item.gold).toBe(1);
  });

  it('names the file, line and field of a bad item (ERR_TASK_ITEM)', () => {
    expect(() => taskItem({ context: 'c', choices: ['a'], gold: 3 }, 'native', 'f.jsonl line 7')).toThrow(/f\.jsonl line 7: the gold index 3 is out of range for 1 choices/);
    expect(() => taskItem({ context: 'c', choices: 'a', gold: 0 }, 'native', 'f.jsonl line 2')).toThrow(/line 2: "choices" must be a non-empty array of strings/);
    expect(() => taskItem({ question: 'q', choices: { text: ['a'], label: ['A'] }, answerKey: 'B' }, 'arc', 'l')).toThrow(/"answerKey" "B" is not one of/);
  });
});

describe('metrics (lm_eval process_results and mean_stderr)', () => {
  it('argmax is numpy\'s: the first maximum', () => {
    expect(argmax([-3, -1, -1, -2])).toBe(1);
  });

  it('acc_norm divides by the choice\'s length in characters', () => {
    const r = scoreItem({ context: 'c', choices: ['ab', 'abcdef'], gold: 1 }, [-4, -6]);
    expect(r.pred).toBe(0); // -4 > -6
    expect(r.predNorm).toBe(1); // -6/6 = -1 > -4/2 = -2
  });

  it('acc_norm counts characters as Python\'s len() does: code points, not UTF-16 units', () => {
    // '😀😀' is 2 characters in Python (4 UTF-16 units): -3/2 = -1.5 < -4/3, so choice 1 wins;
    // dividing by 4 units would give -0.75 and pick choice 0.
    const r = scoreItem({ context: 'c', choices: ['😀😀', 'abc'], gold: 1 }, [-3, -4]);
    expect(r.predNorm).toBe(1);
  });

  it('stderr is the sample standard deviation over sqrt(n)', () => {
    // [1, 0, 1, 1]: mean 0.75, sample variance 0.25, stderr sqrt(0.25)/2 = 0.25.
    expect(meanAndStderr([1, 0, 1, 1])).toEqual({ mean: 0.75, stderr: 0.25 });
  });
});

describe('evaluateTasks', () => {
  let task: TaskSpec;
  let small: TaskSpec;
  beforeAll(async () => {
    task = await loadTaskFile(bundledTask);
    small = { ...task, name: 'small', items: [...task.items.slice(0, 5), { context: '', choices: ['Once upon a time', 'Zebra'], gold: 0 }] };
  });

  it.each([[[]], [[2]], [[0, 3]]])('loglikelihoods equal the float64 reference\'s (1e-5 relative), skipping %j', async (skip) => {
    const [ours] = await evaluateTasks(stories260kDir, [small], { threads: 2, skipLayers: skip });
    const [ref] = await evaluateTasks(stories260kDir, [small], { skipLayers: skip, logprobs: referenceLogprobs(skip) });
    ours.results.forEach((r, i) => {
      r.loglikelihoods.forEach((ll, j) => {
        const want = ref.results[i].loglikelihoods[j];
        expect(Math.abs(ll - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)));
      });
      expect([r.pred, r.predNorm]).toEqual([ref.results[i].pred, ref.results[i].predNorm]);
    });
  });

  it('the bundled task: 64/179 acc and 76/179 acc_norm, as lm-evaluation-harness 0.4.13 scores it', async () => {
    const [r] = await evaluateTasks(stories260kDir, [task], { threads: 2 });
    expect(r.items).toBe(179);
    expect(r.acc).toBe(64 / 179);
    expect(r.accNorm).toBe(76 / 179);
    // The harness's mean_stderr for the same 0/1 lists (printed by scripts/lm_eval_check.py).
    expect(r.accStderr).toBeCloseTo(0.03592327103931582, 12);
    expect(r.accNormStderr).toBeCloseTo(0.03704779597999958, 12);
  });

  it('a choice longer than the model\'s window is ERR_TASK_ITEM naming the file and item, not a NaN that argmax counts as chosen', async () => {
    // stories260k: max_position_embeddings 512; this choice is far more than 512 tokens.
    const long = Array(200).fill('Once upon a time there was a little girl.').join(' ');
    const spec: TaskSpec = { ...task, file: 'long.jsonl', items: [task.items[0], { context: 'A', choices: [long, 'He ran.'], gold: 0 }] };
    await expect(evaluateTasks(stories260kDir, [spec], { threads: 1 })).rejects.toMatchObject({
      code: 'ERR_TASK_ITEM',
      message: expect.stringMatching(/^long\.jsonl item 2: choice 0 is \d+ tokens, more than the 512 predictions/),
    });
  });

  it('batches do not change a result, and identical sequences run once', async () => {
    const dup: TaskSpec = { ...small, items: [...small.items, small.items[0]] };
    const seen: number[] = [];
    const counting: LogprobSource = (ckpt, seqs, o) => {
      seen.push(seqs.length);
      return engineLogprobs(ckpt, seqs, o);
    };
    const [a] = await evaluateTasks(stories260kDir, [dup], { threads: 2, logprobs: counting });
    const [b] = await evaluateTasks(stories260kDir, [dup], { threads: 2, batchTokens: 100 });
    expect(seen).toEqual([small.items.reduce((n, it) => n + it.choices.length, 0)]);
    expect(b.results.map((r) => r.loglikelihoods)).toEqual(a.results.map((r) => r.loglikelihoods));
    expect(a.results[a.results.length - 1]).toEqual(a.results[0]);
  });

  it('tokenBatches groups sequences in order within the budget', () => {
    const s = (n: number): Int32Array => new Int32Array(n);
    expect(tokenBatches([s(3), s(4), s(10), s(1)], 8)).toEqual([{ start: 0, end: 2 }, { start: 2, end: 3 }, { start: 3, end: 4 }]);
  });
});

describe('loadTaskFile and the bundled task', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-tasks-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads JSONL, skipping blank lines; the name is the file\'s base name', async () => {
    const f = path.join(tmp, 'mini.jsonl');
    fs.writeFileSync(f, '{"context": "a", "choices": ["b", "c"], "gold": 1}\n\n{"goal": "x", "sol1": "y", "sol2": "z", "label": 0}\n');
    await expect(loadTaskFile(f)).rejects.toThrow(/mini\.jsonl line 3: "context" must be a string/);
    fs.writeFileSync(f, '\uFEFF{"context": "a", "choices": ["b", "c"], "gold": 1}\r\n\r\n');
    const t = await loadTaskFile(f);
    expect(t).toMatchObject({ name: 'mini', format: 'native', items: [{ context: 'a', choices: ['b', 'c'], gold: 1 }] });
  });

  it('refuses bad JSON, an empty file, a missing file, an unknown format', async () => {
    const bad = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(bad, '{"context": "a",\n');
    await expect(loadTaskFile(bad)).rejects.toThrow(/bad\.jsonl line 1: not valid JSON/);
    const empty = path.join(tmp, 'empty.jsonl');
    fs.writeFileSync(empty, '\n');
    await expect(loadTaskFile(empty)).rejects.toMatchObject({ code: 'ERR_TASK_FILE' });
    await expect(loadTaskFile(path.join(tmp, 'none.jsonl'))).rejects.toThrow(ShortGptError);
    await expect(loadTaskFile(path.join(tmp, 'none.jsonl'))).rejects.toMatchObject({ code: 'ERR_TASK_FILE', message: expect.stringContaining('none.jsonl') });
    await expect(loadTaskFile(bad, { format: 'boolq' })).rejects.toMatchObject({ code: 'ERR_TASK_FORMAT' });
  });

  it('is what scripts/make-task.ts makes (seeded)', () => {
    const r = spawnSync(process.execPath, ['-r', path.join(repoRoot, 'test/prune/helpers/tsRequire.js'), path.join(repoRoot, 'scripts/make-task.ts'), '--check'], { encoding: 'utf8' });
    expect(r.stdout).toMatch(/up to date \(179 items\)/);
    expect(r.status).toBe(0);
  });
});

describe('eval --tasks on the CLI', () => {
  it('--json: {"tasks": [...]} in the issue\'s shape', async () => {
    const io = capture();
    expect(await main(['eval', stories260kDir, '--tasks', bundledTask, '--skip-layers', '2', '--json', '--threads', '2'], io)).toBe(0);
    const doc = JSON.parse(io.out());
    expect(doc.skipLayers).toEqual([2]);
    expect(doc.tasks).toHaveLength(1);
    const t = doc.tasks[0];
    expect(Object.keys(t)).toEqual(expect.arrayContaining(['name', 'items', 'acc', 'accStderr', 'accNorm', 'accNormStderr', 'results']));
    expect(t).toMatchObject({ name: 'tinystories-next-sentence', items: 179 });
    expect(t.results[0]).toEqual({ loglikelihoods: expect.any(Array), pred: expect.any(Number), predNorm: expect.any(Number), gold: 3 });
    expect(t.results[0].loglikelihoods).toHaveLength(4);
  });

  it('prints a table for people', async () => {
    const io = capture();
    expect(await main(['eval', stories260kDir, '--tasks', bundledTask, '--quiet', '--threads', '2'], io)).toBe(0);
    expect(io.out()).toMatch(/^task\s+items\s+acc\s+acc_norm\ntinystories-next-sentence\s+179\s+0\.3575 ± 0\.0359\s+0\.4246 ± 0\.0370\n$/);
  });

  it.each([
    [['--tasks', 'x.jsonl', '--data', 'y.txt'], /exactly one of --tokens FILE, --data DATA or --tasks FILE/],
    [['--tasks', 'x.jsonl', '--task-format', 'boolq'], /--task-format: unknown task format 'boolq'/],
  ])('%j is a usage error (exit 2)', async (extra, message) => {
    const io = capture();
    expect(await main(['eval', stories260kDir, ...extra], io)).toBe(2);
    expect(io.err()).toMatch(message);
  });

  it('a missing task file is a runtime error naming it (exit 1)', async () => {
    const io = capture();
    expect(await main(['eval', stories260kDir, '--tasks', '/nonexistent/t.jsonl', '--quiet'], io)).toBe(1);
    expect(io.err()).toMatch(/\/nonexistent\/t\.jsonl/);
  });
});
