/**
 * Issue 12 §2 against lm-evaluation-harness itself: the bundled task scored by
 * scripts/lm_eval_check.py (HFLM(pretrained=stories260k).loglikelihood on the CPU, float32) and
 * by `eval --tasks`, on the whole model and with a layer deleted (the harness's model gets the
 * layer removed from model.layers; ours skips it). Per-item loglikelihoods agree to 1e-5
 * relative (|a - b| <= 1e-5 * max(1, |b|)): both sides run float32 forward passes, and the
 * harness's own float32 result differs from its float64 one by up to 3.8e-5 absolute on these
 * loglikelihoods (|ll| up to ~115), so an absolute 1e-5 is below either side's rounding. acc,
 * acc_norm and their standard errors are equal.
 *
 * Runs where the conformance venv (torchPython.ts) has lm_eval installed
 * (scripts/conformance-venv.sh installs it); skipped with a line on stderr otherwise, and with
 * SHORTGPT_REQUIRE_CONFORMANCE=1 (.ci/run) a missing harness fails instead.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { evaluateTasks, loadTaskFile, type TaskResult } from '../../lib/eval/tasks';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { findTorchPython, REQUIRE_ENV } from './torchPython';

const SCRIPT = path.join(repoRoot, 'scripts', 'lm_eval_check.py');
const TASK = path.join(repoRoot, 'assets', 'tasks', 'tinystories-next-sentence.jsonl');

interface HarnessResult extends Omit<TaskResult, 'name'> {
  lm_eval: string;
  skipLayers: number[];
}

function locateHarness(): { found: true; python: string; version: string } | { found: false; reason: string } {
  const torch = findTorchPython();
  if (!torch.found) return torch;
  const probe = spawnSync(torch.python, ['-c', 'import importlib.metadata as m; print(m.version("lm_eval"))'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) return { found: false, reason: `${torch.python} has no lm_eval (scripts/conformance-venv.sh installs lm_eval 0.4.13)` };
  return { found: true, python: torch.python, version: probe.stdout.trim() };
}

const located = locateHarness();
const required = process.env[REQUIRE_ENV] === '1';
if (!located.found && !required) process.stderr.write(`\nlm-evaluation-harness conformance suite skipped: ${located.reason}\n`);

if (!located.found && required) {
  test('lm-evaluation-harness conformance: lm_eval is required here', () => {
    throw new Error(`${REQUIRE_ENV}=1 but ${located.reason}`);
  });
}

function runHarness(python: string, skip: number[]): Promise<HarnessResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, OMP_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };
    const args = [SCRIPT, stories260kDir, TASK, ...(skip.length ? ['--skip-layers', skip.join(',')] : [])];
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`lm_eval_check.py exited ${code}: ${Buffer.concat(err).toString().slice(-2000)}`));
      else resolve(JSON.parse(Buffer.concat(out).toString()) as HarnessResult);
    });
  });
}

(located.found ? describe : describe.skip)('multiple-choice loglikelihoods vs lm-evaluation-harness', () => {
  const python = located.found ? located.python : '';
  it.each([[[] as number[]], [[2]]])('the bundled task, skipping %j: per-item loglikelihoods, acc, acc_norm', async (skip) => {
    const task = await loadTaskFile(TASK);
    const [harness, [ours]] = await Promise.all([runHarness(python, skip), evaluateTasks(stories260kDir, [task], { threads: 2, skipLayers: skip })]);
    expect(harness.lm_eval).toBe('0.4.13');
    expect(harness.items).toBe(ours.items);
    let worstAbs = 0;
    let worstRel = 0;
    harness.results.forEach((h, i) => {
      const o = ours.results[i];
      expect(o.gold).toBe(h.gold);
      h.loglikelihoods.forEach((want, j) => {
        const d = Math.abs(o.loglikelihoods[j] - want);
        worstAbs = Math.max(worstAbs, d);
        worstRel = Math.max(worstRel, d / Math.max(1, Math.abs(want)));
      });
      expect([o.pred, o.predNorm]).toEqual([h.pred, h.predNorm]);
    });
    process.stderr.write(`lm_eval ${harness.lm_eval}, skip [${skip}]: acc ${ours.acc.toFixed(4)}, acc_norm ${ours.accNorm.toFixed(4)}; loglikelihoods differ by at most ${worstAbs.toExponential(2)} (${worstRel.toExponential(2)} relative)\n`);
    expect(worstRel).toBeLessThan(1e-5);
    expect(ours.acc).toBe(harness.acc);
    expect(ours.accNorm).toBe(harness.accNorm);
    expect(ours.accStderr).toBeCloseTo(harness.accStderr, 12);
    expect(ours.accNormStderr).toBeCloseTo(harness.accNormStderr, 12);
  }, 180_000);
});
