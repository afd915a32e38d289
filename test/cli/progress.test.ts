/**
 * The progress line: fitted to the terminal (never wraps, so no stale lines), one whole-job
 * fraction and ETA that never go back, counts that never go back or pass their totals, silent
 * off a terminal and with --quiet. The screen checks draw every write onto a small terminal
 * model (test/helpers/terminal.ts); the last test runs the real CLI in a 40-column tmux.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatProgress, progressLine } from '../../lib/cli/progress';
import { JobTracker, phaseId } from '../../lib/prune/jobProgress';
import { prune } from '../../lib/prune/prune';
import { WorkTracker, type WorkProgress } from '../../lib/prune/strategies/passes';
import { capture } from '../helpers/io';
import { repoRoot, stories260kDir, tinyStoriesText } from '../helpers/paths';
import { fakeTerminal } from '../helpers/terminal';

const p: WorkProgress = { phase: 'score', layer: 2, layers: 5, windowsDone: 10, windowsTotal: 40, workDone: 5000, workTotal: 20000, batch: 1, batches: 3 };
const job = { fraction: 0.42, etaSeconds: 6, elapsedSeconds: 4 };

describe('formatProgress', () => {
  it('shows the job percentage, the step, its position, the ETA and the rate when they fit', () => {
    // 5,000 token-layers in 2 s over 5 layers = 500 whole-model tokens/s.
    expect(formatProgress({ ...p, job }, { phaseSeconds: 2, width: 80 })).toBe(' 42% scoring  batch 2/3 layer 3/5  ETA 0:06  500 tok/s');
    expect(formatProgress({ ...p, phase: 'rescore', step: 2, steps: 9, job }, { phaseSeconds: 2, width: 80 })).toMatch(/^ 42% re-scoring step 2\/9 {2}batch 2\/3 layer 3\/5/);
    // Without a job: the phase's own fraction and ETA (a quarter done in 2 s -> 6 s left).
    expect(formatProgress(p, { phaseSeconds: 2, width: 80 })).toBe(' 25% scoring  batch 2/3 layer 3/5  ETA 0:06  500 tok/s');
    expect(formatProgress({ ...p, workDone: 0 }, { phaseSeconds: 0, width: 80 })).toBe('  0% scoring  batch 2/3 layer 3/5  ETA --:--');
    const tok = { phase: 'tokenize', layer: -1, layers: 5, windowsDone: 0, windowsTotal: 0, workDone: 1.2 * 2 ** 20, workTotal: 2.6 * 2 ** 20, documentsDone: 1000, documentsTotal: 3780, job };
    expect(formatProgress(tok, { phaseSeconds: 1, width: 80 })).toBe(' 42% tokenizing  1.2/2.6 MiB  ETA 0:06  1.3MB/s');
    expect(formatProgress({ ...tok, workDone: 0, workTotal: 0 }, { phaseSeconds: 1, width: 80 })).toMatch(/tokenizing {2}1,000\/3,780 docs/);
  });

  it('never reaches the last column, dropping the rate, then the layer, then the batch, then the ETA', () => {
    const events: WorkProgress[] = [
      { ...p, job },
      { ...p, phase: 'rescore', step: 12, job },
      { ...p, phase: 'eval-after', layer: 31, layers: 32, batch: 118, batches: 120, workDone: 1e12, workTotal: 2e12, job: { ...job, etaSeconds: 123456 } },
      { phase: 'tokenize-eval', layer: -1, layers: 5, windowsDone: 0, windowsTotal: 0, workDone: 5e9, workTotal: 7e9, job },
      { phase: 'rewrite', layer: -1, layers: 5, windowsDone: 0, windowsTotal: 0, workDone: 3e10, workTotal: 6e10, job },
    ];
    for (const e of events) {
      for (let width = 1; width <= 120; width++) {
        const line = formatProgress(e, { phaseSeconds: 3, width });
        expect(line.length).toBeLessThanOrEqual(Math.max(1, width - 1));
        if (width >= 12) expect(line).toMatch(/^ *\d+% /);
      }
    }
    expect(formatProgress({ ...p, job }, { phaseSeconds: 2, width: 40 })).toBe(' 42% scoring  batch 2/3  ETA 0:06');
    expect(formatProgress({ ...p, batches: 1, job }, { phaseSeconds: 2, width: 40 })).toBe(' 42% scoring  layer 3/5  ETA 0:06');
    expect(formatProgress({ ...p, job }, { phaseSeconds: 2, width: 30 })).toBe(' 42% scoring  ETA 0:06');
    expect(formatProgress({ ...p, job }, { phaseSeconds: 2, width: 12 })).toBe(' 42% scorin');
  });
});

describe('WorkTracker', () => {
  it('drops a callback that arrives after the next batch began, so windows never pass their total', () => {
    const batches = [[new Int32Array(4), new Int32Array(4)], [new Int32Array(4)]];
    const seen: WorkProgress[] = [];
    const t = new WorkTracker(batches, 2, { phase: 'score', layers: 2 }, (e) => seen.push(e));
    t.start(0);
    const b0last = t.callback(0, 1, 1)!;
    const b1first = t.callback(1, 0, 0)!;
    b1first(1); // batch 1 running...
    b0last(2); // ...when batch 0's last event is finally delivered by the engine's queue
    b1first(1);
    t.callback(1, 1, 1)!(1);
    t.finish(1);
    expect(seen.map((e) => [e.windowsDone, e.workDone])).toEqual([[0, 0], [3, 20], [3, 20], [3, 24], [3, 24]]);
    expect(seen.every((e) => e.windowsTotal === 3 && e.workTotal === 24 && e.batches === 2)).toBe(true);
  });
});

describe('JobTracker', () => {
  it('gives one fraction and ETA over phases of different kinds, and refuses stale events', () => {
    let now = 0;
    const t = new JobTracker([
      { id: 'tokenize', kind: 'tokenize', units: 0 },
      { id: 'score', kind: 'compute', units: 100 },
      { id: 'rewrite', kind: 'write', units: 1000 },
    ], { tokenize: 0.01, compute: 0.01, write: 0.001 }, () => now);
    expect(t.report('tokenize', 0, 100)).toBe(true);
    expect(t.status().etaSeconds).toBeNaN(); // nothing measured yet
    now = 1;
    expect(t.report('tokenize', 100, 100)).toBe(true);
    // tokenize measured: (1 s + 0.5 s of prior) / (100 + 50 units) = 0.01 s/unit; the rest at priors: 1 s + 1 s.
    expect(t.status().etaSeconds).toBeCloseTo(2, 10);
    expect(t.status().fraction).toBeCloseTo(1 / 3, 10);
    now = 2;
    expect(t.report('score', 50, 200)).toBe(true); // the true total replaces the estimate
    expect(t.report('tokenize', 100, 100)).toBe(false); // an earlier phase: stale
    expect(t.report('score', 40, 200)).toBe(false); // less than already reported: stale
    // compute: (1 s + 0.5 s) / (50 + 50) = 0.015 s/unit -> 150 left = 2.25 s, plus 1 s of writing.
    expect(t.status().etaSeconds).toBeCloseTo(3.25, 10);
    const before = t.status().fraction;
    now = 3;
    t.report('rewrite', 0, 1000); // score counts as complete once a later phase begins
    expect(t.status().fraction).toBeGreaterThanOrEqual(before);
    t.finish();
    expect(t.status()).toMatchObject({ fraction: 1, etaSeconds: 0 });
    expect(t.report('rewrite', 10, 1000)).toBe(false);
  });
});

/** A whole prune with every phase, its events recorded (library: the same events the CLI draws). */
async function recordPrune(): Promise<{ events: WorkProgress[]; notes: string[] }> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-progress-'));
  const events: WorkProgress[] = [];
  const notes: string[] = [];
  try {
    await prune(stories260kDir, {
      calib: tinyStoriesText, eval: tinyStoriesText, strategy: 'iterative', remove: 2, seqLen: 128, batchTokens: 1024,
      snapshotBudgetBytes: 0, threads: 1, out: path.join(out, 'pruned'), onProgress: (e) => events.push(e), onNote: (m) => notes.push(m),
    });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  return { events, notes };
}

describe('a whole prune', () => {
  let run: { events: WorkProgress[]; notes: string[] };
  beforeAll(async () => {
    run = await recordPrune();
  });

  it('reports every phase once, in order, with counts that never go back or pass their totals', () => {
    const ids = run.events.map(phaseId).filter((id, i, all) => i === 0 || all[i - 1] !== id);
    expect(ids).toEqual(['tokenize', 'tokenize-eval', 'score', 'rescore-1', 'rescore-2', 'eval-before', 'eval-after', 'rewrite']);
    let prev: WorkProgress | undefined;
    for (const e of run.events) {
      expect(e.windowsDone).toBeLessThanOrEqual(e.windowsTotal);
      expect(e.workDone).toBeLessThanOrEqual(e.workTotal);
      if (prev && phaseId(prev) === phaseId(e)) expect(e.workDone).toBeGreaterThanOrEqual(prev.workDone);
      if (prev) expect(e.job!.fraction).toBeGreaterThanOrEqual(prev.job!.fraction);
      prev = e;
    }
    expect(run.events[0].job!.fraction).toBeLessThan(0.05);
    expect(prev!.job!.fraction).toBe(1);
    expect(run.events.some((e) => (e.batches ?? 0) > 1)).toBe(true);
    // The tokenizer reports bytes of text as it goes, not only at the end.
    const tok = run.events.filter((e) => e.phase === 'tokenize');
    // Each of the 189 stories' separator line takes its own line break and the one before it.
    expect(tok[tok.length - 1].workDone).toBe(fs.statSync(tinyStoriesText).size - 189 * '\n<|endoftext|>\n'.length);
    expect(tok.length).toBeGreaterThan(100);
  });

  it('draws on a 40-column terminal without wrapping and leaves only the notes', () => {
    const term = fakeTerminal(40);
    const line = progressLine({ stdout: capture().stdout, stderr: term.stream }, false);
    let notes = 0;
    for (const e of run.events) {
      if (e.phase === 'score' && notes === 0) {
        line.note(run.notes[0]);
        notes++;
      }
      line.update(e);
      const rows = term.screen.text();
      expect(rows.slice(0, -1)).toEqual(wrap(run.notes.slice(0, notes), 40)); // no stale lines above the progress line
    }
    line.clear();
    expect(term.screen.text()).toEqual(wrap(run.notes.slice(0, 1), 40));
    const frames = term.writes.filter((w) => /%/.test(w)).map((w) => w.replace(/^(\x1b\[\d*[AKJ]|\r)+/, ''));
    expect(frames.length).toBeGreaterThan(5);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(39);
    const shown = frames.map((f) => Number(/^ *(\d+)%/.exec(f)![1]));
    expect(shown).toEqual([...shown].sort((a, b) => a - b));
  });
});

/** Lines as a terminal of `width` columns shows them (a line of exactly `width` takes one row). */
function wrap(lines: string[], width: number): string[] {
  const out: string[] = [];
  for (const l of lines) for (let i = 0; i < Math.max(1, l.length); i += width) out.push(l.slice(i, i + width));
  return out;
}

it('redraws to the new width when the terminal narrows, erasing the rows a reflow made', () => {
  const term = fakeTerminal(80);
  const line = progressLine({ stdout: capture().stdout, stderr: term.stream }, false);
  line.update({ ...p, job });
  expect(term.writes[0]).toBe('\r 42% scoring  batch 2/3 layer 3/5  ETA 0:06');
  term.stream.columns = 30;
  term.stream.emit('resize');
  // The 44-character line now fills two 30-column rows: up one, erase below, redraw.
  expect(term.writes[1]).toBe('\x1b[1A\r\x1b[J 42% scoring  ETA 0:06');
  line.clear();
  expect(term.writes[2]).toBe('\r\x1b[K');
  expect(term.stream.listenerCount('resize')).toBe(0);
});

it('writes only to a terminal, and never with --quiet', () => {
  const tty = capture();
  (tty.stderr as { isTTY?: boolean }).isTTY = true;
  progressLine(tty, false).update({ ...p, workDone: 20000 });
  expect(tty.err()).toMatch(/^\r100% scoring {2}batch 2\/3 layer 3\/5/);

  const quiet = capture();
  (quiet.stderr as { isTTY?: boolean }).isTTY = true;
  const q = progressLine(quiet, true);
  q.update(p);
  q.note('calibration: 1 document');
  expect(quiet.err()).toBe('');

  const pipe = capture();
  const line = progressLine(pipe, false);
  line.update(p);
  line.note('calibration: 1 document');
  expect(pipe.err()).toBe('calibration: 1 document\n');
  expect(tty.out() + quiet.out() + pipe.out()).toBe('');
});

/**
 * End to end on a real terminal: the CLI in a 40-column tmux pane. What stays on the screen must
 * be exactly the run's stderr lines as a pipe gets them (no progress off a terminal), wrapped at
 * 40: any stale progress row would be an extra row.
 */
const tmux = spawnSync('tmux', ['-V']).status === 0;
(tmux ? it : it.skip)(`prune in a 40-column tmux leaves no stale lines${tmux ? '' : ' (skipped: no tmux)'}`, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-tmux-'));
  const session = `sg-progress-${process.pid}`;
  try {
    const cli = path.join(repoRoot, 'test', 'prune', 'helpers', 'cli.js');
    const args = ['prune', stories260kDir, '--calib', tinyStoriesText, '--samples', '96', '--eval', tinyStoriesText, '--remove', '2', '--strategy', 'iterative',
      '--seq-len', '128', '--batch-tokens', '1024', '--threads', '1', '--device', 'cpu', '--force'];
    const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
    const piped = spawnSync(process.execPath, [cli, ...args, '--out', path.join(dir, 'a')], { encoding: 'utf8' });
    expect(piped.status).toBe(0);
    expect(piped.stderr).not.toMatch(/\r|\x1b/);
    const cmd = `${[process.execPath, cli, ...args, '--out', path.join(dir, 'b')].map(q).join(' ')} >${q(path.join(dir, 'stdout'))}; echo "EXIT $?" >${q(path.join(dir, 'done'))}; sleep 30`;
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '40', '-y', '60', cmd]);
    execFileSync('tmux', ['pipe-pane', '-t', session, '-o', `cat >${q(path.join(dir, 'raw'))}`]);
    const until = Date.now() + 90_000;
    while (!fs.existsSync(path.join(dir, 'done')) && Date.now() < until) execFileSync('sleep', ['0.2']);
    expect(fs.readFileSync(path.join(dir, 'done'), 'utf8').trim()).toBe('EXIT 0');
    const screen = execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' }).split('\n').map((l) => l.replace(/\s+$/, ''));
    while (screen.length && screen[screen.length - 1] === '') screen.pop();
    expect(screen).toEqual(wrap(piped.stderr.replace(/\n$/, '').split('\n'), 40));
    expect(fs.readFileSync(path.join(dir, 'stdout'), 'utf8')).toBe(piped.stdout.replace(path.join(dir, 'a'), path.join(dir, 'b')));
    // The progress line was there while it ran (pipe-pane may start after the first frames).
    expect(fs.readFileSync(path.join(dir, 'raw'), 'utf8')).toMatch(/\r\x1b\[K *\d+% (scoring|re-scoring|perplexity|writing)/);
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
