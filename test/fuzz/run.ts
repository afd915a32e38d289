/**
 * Coverage-guided fuzzing of the checkpoint parsers (safetensors header, shard index,
 * config.json), with V8 block coverage as the feedback (test/fuzz/coverage.ts) and no native
 * fuzzer to install. Each target runs in a child process for its share of --seconds; the parent
 * is a watchdog: an input that hangs (no progress for --hang-ms) or kills the child (heap limit,
 * stack, abort) is saved like any other finding.
 *
 *   npm run fuzz -- [--seconds 60] [--targets safetensors,shard-index,config] [--seed N] [--save-corpus]
 *
 * Findings go to test/fuzz/crashes/<target>/ and make the run exit 1; commit them with the fix,
 * and test/fuzz/replay.test.ts replays them (and the corpus) in every jest run.
 * --save-corpus adds the inputs that reached new blocks to test/fuzz/corpus/<target>/.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlockCoverage } from './coverage';
import { MAX_INPUT, mutate, Rng } from './mutate';
import { corpusDir, crashDir, FuzzFinding, inputsIn, runTarget, TARGETS, type TargetName } from './targets';

interface Options { seconds: number; targets: TargetName[]; seed: number; saveCorpus: boolean; hangMs: number; slowMs: number }

function parseArgs(argv: string[]): Options & { child?: { target: TargetName; scratch: string; deadline: number } } {
  const o: ReturnType<typeof parseArgs> = { seconds: 60, targets: [...TARGETS], seed: Date.now() % 2 ** 31, saveCorpus: false, hangMs: 10_000, slowMs: 2_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seconds') o.seconds = Number(val());
    else if (a === '--targets') o.targets = val().split(',') as TargetName[];
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--save-corpus') o.saveCorpus = true;
    else if (a === '--hang-ms') o.hangMs = Number(val());
    else if (a === '--slow-ms') o.slowMs = Number(val());
    else if (a === '--child') o.child = { target: val() as TargetName, scratch: val(), deadline: Number(val()) };
    else throw new Error(`unknown option ${a}`);
  }
  for (const t of o.targets) if (!TARGETS.includes(t)) throw new Error(`unknown target '${t}'; targets: ${TARGETS.join(', ')}`);
  if (!(o.seconds > 0)) throw new Error('--seconds must be a positive number');
  return o;
}

const sha = (b: Buffer): string => createHash('sha1').update(b).digest('hex').slice(0, 16);

function saveFinding(target: TargetName, kind: string, input: Buffer): string {
  const dir = crashDir(target);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${kind}-${sha(input)}`);
  fs.writeFileSync(file, input);
  return path.relative(process.cwd(), file);
}

interface Stats { execs: number; seeds: number; corpus: number; features: number; findings: number }

/** The fuzzing loop of one target (child process); reports Stats to the parent. */
async function child(o: Options, target: TargetName, scratch: string, deadline: number): Promise<void> {
  const cov = new BlockCoverage((url) => /[\\/]lib[\\/](checkpoint[\\/]|errors)/.test(url));
  const rng = new Rng(o.seed ^ TARGETS.indexOf(target));
  const seen = new Set<string>();
  const corpus: Buffer[] = [];
  const signatures = new Set<string>();
  const stats: Stats = { execs: 0, seeds: 0, corpus: 0, features: 0, findings: 0 };
  let lastReport = 0;

  const exec = async (input: Buffer): Promise<boolean> => {
    const t0 = performance.now();
    try {
      await runTarget(target, input, scratch);
    } catch (e) {
      if (!(e instanceof FuzzFinding)) throw e;
      // One file per distinct failure (exception type + where it was thrown), not per input.
      const where = e.cause instanceof Error ? (e.cause.stack ?? '').split('\n').find((l) => l.includes(' at ')) ?? '' : '';
      const sig = `${(e.cause as Error)?.constructor?.name}|${where.trim()}`;
      if (!signatures.has(sig)) {
        signatures.add(sig);
        stats.findings++;
        console.log(`FINDING ${saveFinding(target, 'crash', input)}\n  ${e.message.replace(/\n/g, '\n  ')}`);
      }
    }
    const ms = performance.now() - t0;
    stats.execs++;
    if (ms > o.slowMs && !signatures.has('slow')) {
      signatures.add('slow');
      stats.findings++;
      console.log(`FINDING ${saveFinding(target, 'slow', input)}\n  one input took ${ms.toFixed(0)} ms (limit ${o.slowMs} ms)`);
    }
    let fresh = false;
    for (const f of cov.take()) if (!seen.has(f)) { seen.add(f); fresh = true; }
    if (Date.now() - lastReport > 500) {
      lastReport = Date.now();
      stats.corpus = corpus.length;
      stats.features = seen.size;
      process.send!({ type: 'stats', stats });
    }
    return fresh;
  };

  // Past findings first (a fixed one must pass now), then the seeds, all kept in the corpus.
  for (const { bytes } of [...inputsIn(crashDir(target)), ...inputsIn(corpusDir(target))]) {
    await exec(bytes.subarray(0, MAX_INPUT));
    corpus.push(bytes.subarray(0, MAX_INPUT));
  }
  stats.seeds = corpus.length;
  if (corpus.length === 0) corpus.push(Buffer.from('{}'));

  while (Date.now() < deadline) {
    const input = mutate(target, rng.pick(corpus), rng.pick(corpus), rng);
    if (await exec(input)) {
      corpus.push(input);
      if (o.saveCorpus) fs.writeFileSync(path.join(corpusDir(target), sha(input)), input);
    }
  }
  stats.corpus = corpus.length;
  stats.features = seen.size;
  cov.close();
  process.send!({ type: 'done', stats });
  process.exitCode = stats.findings > 0 ? 1 : 0;
}

/** Runs one target's child under the watchdog; resolves to its stats and whether it found anything. */
function supervise(o: Options, target: TargetName, seconds: number, work: string): Promise<{ stats: Stats | null; failed: boolean }> {
  const scratch = path.join(work, `${target}.input`);
  const deadline = Date.now() + seconds * 1000;
  const args = ['--child', target, scratch, String(deadline), '--seed', String(o.seed), '--slow-ms', String(o.slowMs), ...(o.saveCorpus ? ['--save-corpus'] : [])];
  const tsRequire = path.join(__dirname, '..', 'prune', 'helpers', 'tsRequire.js');
  const proc: ChildProcess = fork(__filename, args, { execArgv: ['--max-old-space-size=1024', '-r', tsRequire], stdio: 'inherit' });
  let stats: Stats | null = null;
  let last = Date.now();
  let hung = false;
  proc.on('message', (m: { type: string; stats: Stats }) => { stats = m.stats; last = Date.now(); });
  const timer = setInterval(() => {
    if (Date.now() - last > o.hangMs) {
      hung = true;
      proc.kill('SIGKILL');
    }
  }, 250);
  return new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      clearInterval(timer);
      if (code === 0 || code === 1) { resolve({ stats, failed: code === 1 }); return; }
      // Killed by the watchdog, by V8's heap limit, or by a signal: the input being run is in `scratch`.
      const input = fs.existsSync(scratch) ? fs.readFileSync(scratch) : Buffer.alloc(0);
      const kind = hung ? 'hang' : 'died';
      console.log(`FINDING ${saveFinding(target, kind, input)}\n  the ${target} child ${hung ? `made no progress for ${o.hangMs} ms` : `exited with ${signal ?? `code ${code}`}`}`);
      resolve({ stats, failed: true });
    });
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) return child(o, o.child.target, o.child.scratch, o.child.deadline);
  const work = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'sg-fuzz-'));
  console.log(`fuzz: ${o.targets.join(', ')} for ${o.seconds} s in all, seed ${o.seed} (rerun with --seed ${o.seed})`);
  let failed = false;
  try {
    for (const t of o.targets) {
      const { stats, failed: f } = await supervise(o, t, o.seconds / o.targets.length, work);
      failed ||= f;
      const s = stats as Stats | null;
      console.log(s ? `fuzz ${t}: ${s.execs} execs, corpus ${s.seeds} -> ${s.corpus}, ${s.features} coverage features, ${s.findings} findings` : `fuzz ${t}: no stats`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (failed) {
    console.log('fuzz: FAILED; the inputs are in test/fuzz/crashes/ (replayed by test/fuzz/replay.test.ts once committed)');
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 2;
});
