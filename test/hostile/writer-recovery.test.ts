/**
 * kill -9 at several points of a rewrite, then a rerun: OUT is at every instant absent, the old
 * complete copy or the new complete copy (or, between the two renames of --force, absent with
 * both complete copies journaled beside it), the input is unchanged, and the rerun leaves no
 * temporaries. And one writer per OUT: a live one refuses the second cleanly, a dead one's lock
 * is taken over, and concurrent --force runs never race.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { snapshotTree, tempRoot } from '../prune/helpers/rawCheckpoint';
import { stories260kDir } from '../helpers/paths';
import { contentOf, placeOut, runCli, slowWritesPreload, strays } from './helpers/writerRun';

let root: string;
let src: string;
let srcBefore: Map<string, string>;
let oldOut: string;
let oldContent: Record<string, string>;
let newContent: Record<string, string>;
const NEW = ['--remove-layers', '1'];
beforeAll(async () => {
  root = tempRoot('sgpt-recover-');
  src = path.join(root, 'model');
  fs.cpSync(stories260kDir, src, { recursive: true });
  srcBefore = snapshotTree(src);
  oldOut = path.join(root, 'old-out');
  const newOut = path.join(root, 'new-out');
  const [a, b] = await Promise.all([
    runCli(['prune', src, '--remove-layers', '3', '--out', oldOut, '--quiet'], { preload: [] }),
    runCli(['prune', src, ...NEW, '--out', newOut, '--quiet'], { preload: [] }),
  ]);
  expect([a.code, b.code]).toEqual([0, 0]);
  oldContent = contentOf(oldOut);
  newContent = contentOf(newOut);
  expect(newContent).not.toEqual(oldContent);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => expect(snapshotTree(src)).toEqual(srcBefore));

/** A fresh parent with OUT inside, optionally a copy of the old output. */
const place = (name: string, withOld: boolean): { parent: string; out: string } => placeOut(root, name, withOld ? oldOut : undefined);

describe('kill -9 during a rewrite, then a rerun', () => {
  it('mid-copy: OUT absent; the rerun removes the dead run\'s temporary directory and lock, says so, and writes OUT', async () => {
    const { parent, out } = place('kill-copy', false);
    const killed = await runCli(['prune', src, ...NEW, '--out', out, '--quiet'], { env: { SGT_KILL: 'before:write:3' } });
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(out)).toBe(false);
    const left = strays(parent, []);
    expect(left).toEqual(['.out.lock', expect.stringMatching(new RegExp(`^\\.out\\.tmp-${killed.pid}-\\d+-[0-9a-f]{8}$`))]);
    const rerun = await runCli(['prune', src, ...NEW, '--out', out], { preload: [] });
    expect(rerun.code).toBe(0);
    expect(rerun.stderr).toContain(`removed ${path.join(parent, left[1]!)}, left by an interrupted run (pid ${killed.pid}, no longer running)`);
    expect(contentOf(out)).toEqual(newContent);
    expect(strays(parent, ['out'])).toEqual([]);
  });

  // --force over an old OUT, killed before or after one of its steps. `state` is what must be
  // found right after the kill; the rerun (without --force) must complete or undo the swap and
  // then refuse to overwrite, so OUT's final content shows what the recovery did.
  const points: Array<[string, string, 'old' | 'between' | 'new', 'old' | 'new']> = [
    ['while copying', 'before:write:3', 'old', 'old'],
    ['after the journal, before the first rename', 'before:rename:1', 'old', 'new'],
    ['between the two renames', 'after:rename:1', 'between', 'new'],
    ['just before the new copy is moved in', 'before:rename:2', 'between', 'new'],
    ['after the new copy is in, before the old one is deleted', 'after:rename:2', 'new', 'new'],
  ];
  it.each(points)('--force killed %s: OUT is recoverable at that instant, and the rerun recovers it', async (_what, kill, state, final) => {
    const { parent, out } = place(`kill-${kill.replace(/:/g, '-')}`, true);
    const killed = await runCli(['prune', src, ...NEW, '--out', out, '--force', '--quiet'], { env: { SGT_KILL: kill } });
    expect(killed.signal).toBe('SIGKILL');
    if (state === 'between') {
      // OUT is absent, but the journal names a complete old copy and a complete new one.
      expect(fs.existsSync(out)).toBe(false);
      const journal = JSON.parse(fs.readFileSync(path.join(parent, '.out.swap'), 'utf8')) as { tmp: string; old: string };
      expect(contentOf(path.join(parent, journal.old))).toEqual(oldContent);
      expect(contentOf(path.join(parent, journal.tmp))).toEqual(newContent);
    } else {
      expect(contentOf(out)).toEqual(state === 'old' ? oldContent : newContent);
    }
    const rerun = await runCli(['prune', src, ...NEW, '--out', out], { preload: [] });
    expect(rerun.code).toBe(1);
    expect(rerun.stderr).toContain('[ERR_OUTPUT_EXISTS]');
    if (final === 'new' && state !== 'new') expect(rerun.stderr).toContain(`finished the interrupted --force replacement of ${out}`);
    expect(contentOf(out)).toEqual(final === 'old' ? oldContent : newContent);
    expect(strays(parent, ['out'])).toEqual([]);
  });
});

describe('one writer per output', () => {
  it('a second run to an OUT being written stops with ERR_OUTPUT_LOCKED naming OUT and the holder; the first completes', async () => {
    const { parent, out } = place('locked', false);
    let second: Promise<Awaited<ReturnType<typeof runCli>>> | undefined;
    const first = await runCli(['prune', src, ...NEW, '--out', out, '--quiet'], {
      preload: [slowWritesPreload],
      onStderr: (all) => {
        if (second === undefined && all.includes('SLOW-WRITES-STARTED')) second = runCli(['prune', src, ...NEW, '--out', out, '--force'], { preload: [] });
      },
    });
    expect(second).toBeDefined();
    const loser = await second!;
    expect(first.code).toBe(0);
    expect(loser.code).toBe(1);
    expect(loser.stderr).toContain(`[ERR_OUTPUT_LOCKED]: output ${out} is being written by another shortgpt-native run (pid ${first.pid}, since `);
    expect(contentOf(out)).toEqual(newContent);
    expect(strays(parent, ['out'])).toEqual([]);
  });

  it('the lock of a process that is gone, or of a reused pid, is taken over', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    for (const [name, holder] of [
      ['stale-dead', { pid: dead, startTime: 12345, host: os.hostname() }],
      ['stale-reused', { pid: process.pid, startTime: 1, host: os.hostname() }],
    ] as const) {
      const { parent, out } = place(name, false);
      fs.writeFileSync(path.join(parent, '.out.lock'), JSON.stringify({ ...holder, createdAt: '2020-01-01T00:00:00.000Z' }));
      // And the staging file of a run that died while placing its lock.
      fs.writeFileSync(path.join(parent, `.out.lock.${dead}-abcdef01`), '{}');
      const r = await runCli(['prune', src, ...NEW, '--out', out, '--quiet'], { preload: [] });
      expect([name, r.code, r.stderr]).toEqual([name, 0, '']);
      expect(contentOf(out)).toEqual(newContent);
      expect(strays(parent, ['out'])).toEqual([]);
    }
  });

  it('concurrent --force runs to one OUT: each succeeds or is refused cleanly, and OUT ends complete', async () => {
    const { parent, out } = place('race', true);
    for (let trial = 0; trial < 3; trial++) {
      const runs = await Promise.all([0, 1, 2].map(() => runCli(['prune', src, ...NEW, '--out', out, '--force', '--quiet'], { preload: [] })));
      for (const r of runs) {
        if (r.code !== 0) expect([trial, r.code, r.stderr]).toEqual([trial, 1, expect.stringMatching(/^shortgpt-native: error \[ERR_OUTPUT_LOCKED\]: output \S+ is being written by another shortgpt-native run \(pid \d+, since /)]);
      }
      expect(runs.some((r) => r.code === 0)).toBe(true);
      expect(contentOf(out)).toEqual(newContent);
      expect(strays(parent, ['out'])).toEqual([]);
    }
  });
});
