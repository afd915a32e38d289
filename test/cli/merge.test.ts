/**
 * Sharded scoring end to end, as the schedulers run it but on this machine: N CLI processes with
 * the environment a Slurm job array or a Kubernetes Indexed Job gives each task (`--shard
 * auto`), `merge`, and `prune --scores`. Checked against one process's `score --json` and
 * `prune --calib` on the same data (the independent reference), plus the refusals: partials
 * that do not belong together, and scores of another model.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listTree, modelCopy, runCli, type CliRun } from '../hostile/helpers/cliProcess';
import { repoRoot, stories260kDir, tinyStoriesText } from '../helpers/paths';
import { parseYaml } from '../helpers/yaml';

const DATA = ['--calib', tinyStoriesText, '--samples', '24', '--seq-len', '64', '--threads', '1'];
/** No scheduler variables from the environment the tests themselves run in. */
const NO_SCHEDULER = { SLURM_ARRAY_TASK_ID: undefined, SLURM_ARRAY_TASK_MIN: undefined, SLURM_ARRAY_TASK_COUNT: undefined, SLURM_ARRAY_TASK_MAX: undefined, SLURM_ARRAY_TASK_STEP: undefined, JOB_COMPLETION_INDEX: undefined, SHORTGPT_SHARDS: undefined };

interface ScoresDoc {
  tokens: number;
  sequences: number;
  layers: Array<{ layer: number; bi: number; angular: number; relmag: number; rank: number; zeroNormTokens: number }>;
  provenance?: { shards: number };
}

let tmp: string;
let single: ScoresDoc;
let slurmPartials: string[];
let otherModel: string;

const ok = (r: CliRun): CliRun => {
  if (r.status !== 0) throw new Error(`exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

/** Largest relative difference of bi/angular/relmag between two score documents; ranks must agree. */
function maxRelativeDifference(a: ScoresDoc, b: ScoresDoc): number {
  expect(b.layers.map((l) => l.rank)).toEqual(a.layers.map((l) => l.rank));
  expect(b.tokens).toBe(a.tokens);
  expect(b.sequences).toBe(a.sequences);
  let worst = 0;
  a.layers.forEach((l, i) => {
    for (const k of ['bi', 'angular', 'relmag'] as const) worst = Math.max(worst, Math.abs(l[k] - b.layers[i][k]) / Math.abs(l[k]));
    expect(b.layers[i].zeroNormTokens).toBe(l.zeroNormTokens);
  });
  return worst;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-merge-test-'));
  single = JSON.parse(ok(await runCli(['score', stories260kDir, ...DATA, '--json', '--quiet'], { env: NO_SCHEDULER })).stdout) as ScoresDoc;
  // Three Slurm array tasks (--array=10-12): IDs 10..12, MIN 10, COUNT 3, run at once.
  slurmPartials = [0, 1, 2].map((i) => path.join(tmp, `slurm-${i}.json`));
  const runs = await Promise.all([0, 1, 2].map((i) => runCli(['score', stories260kDir, ...DATA, '--shard', 'auto', '--partial', slurmPartials[i]], {
    env: { ...NO_SCHEDULER, SLURM_ARRAY_TASK_ID: String(10 + i), SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_COUNT: '3' },
  })));
  runs.forEach((r, i) => {
    ok(r);
    // It says which scheduler index it used.
    expect(r.stderr).toContain(`shard ${i} of 3 (Slurm job array (SLURM_ARRAY_TASK_ID=${10 + i}, SLURM_ARRAY_TASK_MIN=10, SLURM_ARRAY_TASK_COUNT=3))`);
  });
  // The same weights with a config.json that differs by one field: another model by its hash.
  otherModel = modelCopy(path.join(tmp, 'other-model'), { use_cache: false });
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('score --shard auto + merge', () => {
  it('3 Slurm array tasks merge to the single-process scores (1e-12 relative), in any file order', async () => {
    const out = path.join(tmp, 'slurm-scores.json');
    const r = ok(await runCli(['merge', slurmPartials[2], slurmPartials[0], slurmPartials[1], '--out', out, '--json']));
    const merged = JSON.parse(fs.readFileSync(out, 'utf8')) as ScoresDoc & Record<string, unknown>;
    expect(JSON.parse(r.stdout)).toEqual(merged);
    expect(maxRelativeDifference(single, merged)).toBeLessThan(1e-12);
    // score --json's shape, plus the provenance.
    expect(Object.keys(merged)).toEqual(expect.arrayContaining(['model', 'tokens', 'sequences', 'device', 'layers', 'warnings', 'provenance', 'sums']));
    expect(merged.provenance?.shards).toBe(3);
    // Per-window sums (the CPU keeps them, for the bootstrap) are concatenated in window order.
    const sums = merged.sums as { layers: Array<{ sumCos: number; perWindow?: { tokens: number[]; sumCos: number[] } }> };
    for (const l of sums.layers) {
      expect(l.perWindow!.tokens).toHaveLength(single.sequences);
      expect(l.perWindow!.tokens.reduce((a, b) => a + b, 0)).toBe(single.tokens);
      expect(Math.abs(l.perWindow!.sumCos.reduce((a, b) => a + b, 0) - l.sumCos) / l.sumCos).toBeLessThan(1e-12);
    }
    // Deterministic: merging again gives the same bytes.
    const again = path.join(tmp, 'slurm-scores-again.json');
    ok(await runCli(['merge', ...slurmPartials, '--out', again, '--quiet']));
    expect(fs.readFileSync(again, 'utf8')).toBe(fs.readFileSync(out, 'utf8'));
  });

  it('2 Kubernetes Indexed Job pods (JOB_COMPLETION_INDEX, --shards 2) merge to the same scores', async () => {
    const files = [0, 1].map((i) => path.join(tmp, `k8s-${i}.json`));
    const runs = await Promise.all([0, 1].map((i) => runCli(['score', stories260kDir, ...DATA, '--shard', 'auto', '--shards', '2', '--partial', files[i]], {
      env: { ...NO_SCHEDULER, JOB_COMPLETION_INDEX: String(i) },
    })));
    runs.forEach((r) => expect(ok(r).stderr).toContain('Kubernetes Indexed Job (JOB_COMPLETION_INDEX='));
    const out = path.join(tmp, 'k8s-scores.json');
    ok(await runCli(['merge', ...files, '--out', out, '--quiet']));
    expect(maxRelativeDifference(single, JSON.parse(fs.readFileSync(out, 'utf8')) as ScoresDoc)).toBeLessThan(1e-12);
  });

  it('--eval DATA: the shards\' perplexity sums merge to eval --data\'s perplexity', async () => {
    const evalArgs = ['--eval', tinyStoriesText, '--max-calib-tokens', '8192'];
    const files = [0, 1].map((i) => path.join(tmp, `eval-${i}.json`));
    for (let i = 0; i < 2; i++) ok(await runCli(['score', stories260kDir, ...DATA, ...evalArgs, '--shard', `${i}/2`, '--partial', files[i], '--quiet']));
    const out = path.join(tmp, 'eval-scores.json');
    ok(await runCli(['merge', ...files, '--out', out, '--quiet']));
    const merged = JSON.parse(fs.readFileSync(out, 'utf8')) as { perplexity: { perplexity: number; predictions: number; tokens: number } };
    const single = JSON.parse(ok(await runCli(['eval', stories260kDir, '--data', tinyStoriesText, '--seq-len', '64', '--threads', '1', '--max-calib-tokens', '8192', '--json', '--quiet'])).stdout) as { perplexity: number; predictions: number; tokens: number };
    expect({ predictions: merged.perplexity.predictions, tokens: merged.perplexity.tokens }).toEqual({ predictions: single.predictions, tokens: single.tokens });
    expect(Math.abs(merged.perplexity.perplexity - single.perplexity) / single.perplexity).toBeLessThan(1e-12);
    // A shard without --eval does not merge with one that has it. (Same calibration options: the
    // --max-calib-tokens limit is part of the windowing, so it is given to both.)
    const plain = path.join(tmp, 'eval-plain-1.json');
    ok(await runCli(['score', stories260kDir, ...DATA, '--max-calib-tokens', '8192', '--shard', '1/2', '--partial', plain, '--quiet']));
    const r = await runCli(['merge', files[0], plain, '--out', path.join(tmp, 'never.json')]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(/eval-plain-1.json has no --eval perplexity sums, but .*eval-0.json has/) });
  });

  it('refuses partials that do not belong together, naming the mismatch, and writes nothing', async () => {
    const out = path.join(tmp, 'refused.json');
    const refused = async (files: string[], message: RegExp): Promise<void> => {
      const r = await runCli(['merge', ...files, '--out', out]);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(message) });
      expect(fs.existsSync(out)).toBe(false);
    };
    await refused([slurmPartials[0], slurmPartials[2]], /ERR_MERGE_MISMATCH.*missing shard 1 of 3/);
    await refused([slurmPartials[0], slurmPartials[1], slurmPartials[1], slurmPartials[2]], /shard 1 of 3 given twice/);
    // Another model (config.json differs), other data (a different sample), another N.
    const foreign = path.join(tmp, 'foreign-1.json');
    ok(await runCli(['score', otherModel, ...DATA, '--shard', '1/3', '--partial', foreign, '--quiet']));
    await refused([slurmPartials[0], foreign, slurmPartials[2]], /foreign-1.json does not belong with .*slurm-0.json: different model: config.json sha256/);
    const otherData = path.join(tmp, 'seed-1.json');
    ok(await runCli(['score', stories260kDir, ...DATA, '--seed', '1', '--shard', '1/3', '--partial', otherData, '--quiet']));
    await refused([slurmPartials[0], otherData, slurmPartials[2]], /different windowing option seed: 0 in .*, 1 in .*seed-1.json/);
    const otherN = path.join(tmp, 'n2.json');
    ok(await runCli(['score', stories260kDir, ...DATA, '--shard', '1/2', '--partial', otherN, '--quiet']));
    await refused([slurmPartials[0], otherN], /different shard count N: 3 in .*, 2 in .*n2.json/);
    // Not a partial at all.
    const junk = path.join(tmp, 'junk.json');
    fs.writeFileSync(junk, '{"layers": []}');
    await refused([junk], /ERR_SCORES_INVALID.*junk.json: not a partial scores file/);
  });

  it('usage errors: --shard without --partial, --tokens sharded, --shard auto with no scheduler', async () => {
    const usage = async (args: string[], message: RegExp): Promise<void> => {
      const r = await runCli(['score', stories260kDir, ...args], { env: NO_SCHEDULER });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: expect.stringMatching(message) });
    };
    await usage([...DATA, '--shard', '0/2'], /--shard needs --partial FILE/);
    await usage(['--tokens', 'x.json', '--shard', '0/2', '--partial', path.join(tmp, 'x.json')], /--partial scores calibration windows: give --calib DATA/);
    await usage([...DATA, '--shard', 'auto', '--partial', path.join(tmp, 'x.json')], /no scheduler index.*SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX/);
    await usage([...DATA, '--shard', '3/3', '--partial', path.join(tmp, 'x.json')], /I must be less than N/);
    expect(fs.existsSync(path.join(tmp, 'x.json'))).toBe(false);
  });
});

describe('prune --scores', () => {
  let scores: string;
  beforeAll(async () => {
    scores = path.join(tmp, 'prune-scores.json');
    ok(await runCli(['merge', ...slurmPartials, '--out', scores, '--quiet']));
  });

  const dryRun = async (args: string[]): Promise<{ removedLayers: number[]; block?: { candidates: Record<string, number> } }> =>
    JSON.parse(ok(await runCli(['prune', stories260kDir, '--remove', '2', '--dry-run', '--json', '--quiet', ...args], { env: NO_SCHEDULER })).stdout) as { removedLayers: number[]; block?: { candidates: Record<string, number> } };

  it.each(['one-shot', 'block'])('%s chooses the layers prune --calib chooses, without scoring', async (strategy) => {
    const fromScores = await dryRun(['--scores', scores, '--strategy', strategy]);
    const scored = await dryRun([...DATA, '--strategy', strategy]);
    expect(fromScores.removedLayers).toEqual(scored.removedLayers);
    if (strategy === 'block') {
      for (const [start, d] of Object.entries(scored.block!.candidates)) expect(Math.abs(fromScores.block!.candidates[start] - d) / d).toBeLessThan(1e-12);
    }
  });

  it('rewrites the model from the scores', async () => {
    const out = path.join(tmp, 'pruned');
    ok(await runCli(['prune', stories260kDir, '--scores', scores, '--remove', '1', '--out', out, '--quiet']));
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { num_hidden_layers: number };
    expect(cfg.num_hidden_layers).toBe(single.layers.length - 1);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { removedLayers: number[] };
    expect(report.removedLayers).toEqual([single.layers.find((l) => l.rank === 1)!.layer]);
  });

  it('refuses scores of another model, the iterative strategy, and --scores with --calib', async () => {
    const out = path.join(tmp, 'never');
    const other = await runCli(['prune', otherModel, '--scores', scores, '--remove', '1', '--out', out]);
    expect({ status: other.status, stderr: other.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(/ERR_SCORES_MODEL.*different model: config.json sha256/) });
    const iterative = await runCli(['prune', stories260kDir, '--scores', scores, '--remove', '1', '--strategy', 'iterative', '--out', out]);
    expect({ status: iterative.status, stderr: iterative.stderr }).toEqual({ status: 1, stderr: expect.stringMatching(/ERR_SCORES_STRATEGY.*iterative strategy re-scores/) });
    const both = await runCli(['prune', stories260kDir, '--scores', scores, ...DATA, '--remove', '1', '--out', out]);
    expect({ status: both.status, stderr: both.stderr }).toEqual({ status: 2, stderr: expect.stringMatching(/--calib DATA or --scores FILE, not both/) });
    expect(listTree(out)).toEqual([]);
  });
});

describe('examples/', () => {
  it('the Slurm scripts pass bash -n and submit an array plus a dependent merge + prune job', () => {
    const dir = path.join(repoRoot, 'examples', 'slurm');
    for (const f of ['config.sh', 'submit.sh', 'score-array.sbatch', 'merge-prune.sbatch']) {
      const r = spawnSync('bash', ['-n', path.join(dir, f)], { encoding: 'utf8' });
      expect({ f, status: r.status, stderr: r.stderr }).toEqual({ f, status: 0, stderr: '' });
    }
    const submit = fs.readFileSync(path.join(dir, 'submit.sh'), 'utf8');
    expect(submit).toMatch(/sbatch --parsable --array="0-\$\(\(SHARDS - 1\)\)" score-array\.sbatch/);
    expect(submit).toMatch(/--dependency="afterok:\$\{array\}" merge-prune\.sbatch/);
    expect(fs.readFileSync(path.join(dir, 'score-array.sbatch'), 'utf8')).toMatch(/--shard auto --partial/);
    expect(fs.readFileSync(path.join(dir, 'merge-prune.sbatch'), 'utf8')).toMatch(/merge .*--out[\s\S]*prune .*--scores/);
  });

  it('iterative-rounds.sh (sharded rounds of prune --scores --remove 1) removes what --strategy iterative removes', async () => {
    const script = path.join(repoRoot, 'examples', 'iterative-rounds.sh');
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
    const work = path.join(tmp, 'rounds');
    const cli = `${process.execPath} ${path.join(repoRoot, 'test', 'prune', 'helpers', 'cli.js')}`;
    const r = spawnSync('bash', [script, stories260kDir, ...DATA.slice(1, 2), '2', '2', work, ...DATA.slice(2)], { encoding: 'utf8', env: { ...process.env, ...NO_SCHEDULER, SHORTGPT: cli } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout.trim()).toBe(path.join(work, 'round-2'));
    // Each round's shortgpt.json names the layer it removed in that round's model: back to source indices.
    const [first] = (JSON.parse(fs.readFileSync(path.join(work, 'round-1', 'shortgpt.json'), 'utf8')) as { removedLayers: number[] }).removedLayers;
    const [second] = (JSON.parse(fs.readFileSync(path.join(work, 'round-2', 'shortgpt.json'), 'utf8')) as { removedLayers: number[] }).removedLayers;
    const rounds = [first, second >= first ? second + 1 : second].sort((a, b) => a - b);
    const iterative = JSON.parse(ok(await runCli(['prune', stories260kDir, ...DATA, '--remove', '2', '--strategy', 'iterative', '--dry-run', '--json', '--quiet'], { env: NO_SCHEDULER })).stdout) as { removedLayers: number[] };
    expect(rounds).toEqual(iterative.removedLayers);
  });

  it('the Kubernetes manifests parse, with the fields an Indexed Job and its merge Job need', () => {
    const dir = path.join(repoRoot, 'examples', 'k8s');
    type Job = { apiVersion: string; kind: string; metadata: { name: string }; spec: { completionMode?: string; completions: number; parallelism?: number; template: { spec: { restartPolicy: string; containers: Array<{ image: string; args: string[]; env?: Array<{ name: string; value: string }>; resources: { limits?: Record<string, unknown> } }>; volumes: unknown[] } } } };
    const load = (f: string): Job => parseYaml(fs.readFileSync(path.join(dir, f), 'utf8')) as Job;
    for (const f of ['score-indexed-job.yaml', 'score-indexed-job-gpu.yaml']) {
      const job = load(f);
      expect(job).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', spec: { completionMode: 'Indexed', template: { spec: { restartPolicy: 'Never' } } } });
      const c = job.spec.template.spec.containers[0];
      expect(c.image).toMatch(/^node:\d+/);
      const args = c.args.join(' ');
      expect(args).toContain('npm install');
      expect(args).toContain(`--shard auto --shards ${job.spec.completions}`);
      expect(c.env).toContainEqual({ name: 'SHORTGPT_SHARDS', value: String(job.spec.completions) });
      if (f.includes('gpu')) expect(c.resources.limits).toMatchObject({ 'nvidia.com/gpu': 1 });
    }
    const merge = load('merge-job.yaml');
    expect(merge).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', spec: { template: { spec: { restartPolicy: 'Never' } } } });
    expect(merge.spec.template.spec.containers[0].args.join(' ')).toMatch(/merge .*--out \/data\/scores.json.*prune .*--scores \/data\/scores.json/);
    expect(load('pvc.yaml')).toMatchObject({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', spec: { accessModes: ['ReadWriteMany'] } });
  });
});
