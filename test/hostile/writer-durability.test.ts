/**
 * The writer's safety paths, through the CLI in a child process with a preload that records or
 * fails file operations (test/hostile/helpers/writerFaults.js): every output file and directory
 * is flushed before the rename that publishes it and the parent after; the read-back check and
 * the source-changed check fire; a full disk at any write names the file and leaves nothing; a
 * full or read-only output is found before any work.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { snapshotTree, tempRoot } from '../prune/helpers/rawCheckpoint';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { contentOf, placeOut, runCli, slowWritesPreload, strays } from './helpers/writerRun';

let root: string;
let src: string;
let oldOut: string;
let srcBefore: Map<string, string>;
beforeAll(async () => {
  root = tempRoot('sgpt-writer-');
  src = path.join(root, 'model');
  fs.cpSync(stories260kDir, src, { recursive: true });
  fs.mkdirSync(path.join(src, 'extra', 'deeper'), { recursive: true });
  fs.writeFileSync(path.join(src, 'extra', 'deeper', 'notes.txt'), 'a file in a subfolder\n');
  srcBefore = snapshotTree(src);
  // An earlier output (a different cut) for the --force cases.
  oldOut = path.join(root, 'old-out');
  const r = await runCli(['prune', src, '--remove-layers', '3', '--out', oldOut, '--quiet'], { preload: [] });
  expect(r.code).toBe(0);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => expect(snapshotTree(src)).toEqual(srcBefore));

interface Op {
  op: string;
  n?: number;
  path?: string;
  from?: string;
  to?: string;
  position?: number | null;
}

const readLog = (file: string): Op[] => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Op);

/** A fresh parent with OUT inside, optionally a copy of the old output. */
const place = (name: string, withOld: boolean): { parent: string; out: string } => placeOut(root, name, withOld ? oldOut : undefined);

describe('the writer flushes before it publishes', () => {
  it('--force: every output file and directory is fsynced before the rename into OUT, the parent after each rename, and the old copy is removed only after', async () => {
    const { parent, out } = place('order', true);
    const log = path.join(root, 'order.log');
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--force', '--quiet'], { env: { SGT_FS_LOG: log } });
    expect(r.code).toBe(0);
    const ops = readLog(log);
    const renames = ops.filter((o) => o.op === 'rename');
    // OUT is moved aside first, then the new copy moved in: two renames, in that order.
    expect(renames).toHaveLength(2);
    const [aside, publish] = renames as [Op, Op];
    expect(aside.from).toBe(out);
    expect(path.basename(aside.to!)).toMatch(/^\.out\.old-\d+-\d+-[0-9a-f]{8}$/);
    expect(publish.to).toBe(out);
    const tmp = publish.from!;
    expect(path.dirname(tmp)).toBe(parent);
    const iAside = ops.indexOf(aside);
    const iPublish = ops.indexOf(publish);
    const synced = (p: string, from: number, to: number) => ops.slice(from, to).some((o) => o.op === 'fsync' && o.path === p);

    // Before the first rename: every file now in OUT, every directory of the new copy, and the swap journal.
    const files = Object.keys(contentOf(out)).concat('shortgpt.json');
    expect(files).toContain('extra/deeper/notes.txt');
    for (const rel of files) expect([rel, synced(path.join(tmp, rel), 0, iAside)]).toEqual([rel, true]);
    for (const dir of [tmp, path.join(tmp, 'extra'), path.join(tmp, 'extra', 'deeper')]) expect([dir, synced(dir, 0, iAside)]).toEqual([dir, true]);
    expect(synced(path.join(parent, '.out.swap'), 0, iAside)).toBe(true);
    expect(synced(parent, 0, iAside)).toBe(true);
    // After each rename, before the next step: the parent.
    expect(synced(parent, iAside + 1, iPublish)).toBe(true);
    expect(synced(parent, iPublish + 1, ops.length)).toBe(true);
    // Nothing of the old OUT is deleted before the new one is in place.
    const rms = ops.map((o, i) => [o, i] as const).filter(([o]) => o.op === 'rm' && (o.path === aside.to || o.path === out));
    expect(rms.length).toBeGreaterThan(0);
    for (const [, i] of rms) expect(i).toBeGreaterThan(iPublish);
    expect(strays(parent, ['out'])).toEqual([]);
  });
});

describe('checks that stop a bad copy', () => {
  it('a header that reads back differently from the plan is ERR_REWRITE_VERIFY, and nothing is written', async () => {
    const { parent, out } = place('verify', false);
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--quiet'], { env: { SGT_CORRUPT_HEADER: '1' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[ERR_REWRITE_VERIFY\]: .*\.out\.tmp-[^/]*\/model\.safetensors.*I32/);
    expect(strays(parent, [])).toEqual([]);
  });

  it('a source shard modified during the copy (same size) is ERR_SOURCE_CHANGED naming it, and nothing is written', async () => {
    const victim = path.join(root, 'victim');
    fs.cpSync(src, victim, { recursive: true });
    const shard = path.join(victim, 'model.safetensors');
    const { parent, out } = place('changed', false);
    let flipped = false;
    const r = await runCli(['prune', victim, '--remove-layers', '1', '--out', out, '--quiet'], {
      preload: [slowWritesPreload],
      onStderr: (all) => {
        if (!flipped && all.includes('SLOW-WRITES-STARTED')) {
          flipped = true;
          // One byte of tensor data, in place: the size stays, so only a check of the file's state catches it.
          const fd = fs.openSync(shard, 'r+');
          const b = Buffer.alloc(1);
          fs.readSync(fd, b, 0, 1, 500000);
          b[0] = b[0]! ^ 0xff;
          fs.writeSync(fd, b, 0, 1, 500000);
          fs.closeSync(fd);
        }
      },
    });
    expect(flipped).toBe(true);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_SOURCE_CHANGED]');
    expect(r.stderr).toContain(shard);
    expect(strays(parent, [])).toEqual([]);
  });
});

describe('a full disk at any write', () => {
  /** Output writes of one run, counted by the preload's log. */
  async function writesOf(args: string[], name: string): Promise<Op[]> {
    const log = path.join(root, `${name}.log`);
    const r = await runCli(args, { env: { SGT_FS_LOG: log } });
    expect(r.code).toBe(0);
    return readLog(log).filter((o) => o.op === 'write');
  }

  async function inPairs<T>(items: T[], f: (x: T) => Promise<void>): Promise<void> {
    for (let i = 0; i < items.length; i += 2) await Promise.all(items.slice(i, i + 2).map(f));
  }

  it('fails with ERR_OUTPUT_NO_SPACE naming the file, removes the temporary directory and the parents it made', async () => {
    const count = place('enospc-count', false);
    const writes = await writesOf(['prune', src, '--remove-layers', '1', '--out', path.join(count.parent, 'a', 'b', 'out'), '--quiet'], 'enospc');
    expect(writes.length).toBeGreaterThanOrEqual(10);
    await inPairs(writes.map((w, i) => [w, i + 1] as const), async ([w, n]) => {
      const parent = path.join(root, `enospc-${n}`);
      fs.mkdirSync(parent);
      const out = path.join(parent, 'a', 'b', 'out');
      const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--quiet'], { env: { SGT_FAIL_WRITE_AT: String(n) } });
      const where = `write ${n} of ${writes.length} (${path.basename(w.path ?? '?')})`;
      expect([where, r.code]).toEqual([where, 1]);
      expect([where, r.stderr]).toEqual([where, expect.stringMatching(/\[ERR_OUTPUT_NO_SPACE\]: no space left writing \S*\/\.out\.tmp-\d+-\d+-[0-9a-f]{8}\//)]);
      expect(r.stderr).toContain(path.basename(w.path!));
      expect([where, fs.readdirSync(parent)]).toEqual([where, []]);
    });
  });

  it('with --force, leaves the old OUT as it was: the first write, one in the middle, and the swap journal failing', async () => {
    const count = place('enospc-force-count', true);
    const writes = await writesOf(['prune', src, '--remove-layers', '1', '--out', count.out, '--force', '--quiet'], 'enospc-force');
    // The swap journal is the last write before the renames.
    expect(writes[writes.length - 1]!.path).toBe(path.join(count.parent, '.out.swap'));
    const old = contentOf(oldOut);
    // Each write of the copy itself is covered above; here, what --force adds.
    await inPairs([1, Math.ceil(writes.length / 2), writes.length], async (n) => {
      const { parent, out } = place(`enospc-force-${n}`, true);
      const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--force', '--quiet'], { env: { SGT_FAIL_WRITE_AT: String(n) } });
      expect([n, r.code, r.stderr]).toEqual([n, 1, expect.stringContaining('[ERR_OUTPUT_NO_SPACE]')]);
      expect([n, contentOf(out)]).toEqual([n, old]);
      expect([n, strays(parent, ['out'])]).toEqual([n, []]);
    });
  });
});

describe('the output is checked before any work', () => {
  it('too little free space for the output stops prune --calib before the calibration data is read, naming OUT and its parent', async () => {
    const { parent, out } = place('space-calib', false);
    const r = await runCli(['prune', src, '--calib', tinyStoriesText, '--samples', '4', '--remove', '1', '--out', out], { env: { SGT_FREE_BYTES: '300000' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`\\[ERR_OUTPUT_NO_SPACE\\]: not enough space for ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .* but ${parent.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has 293.0 KiB free`));
    expect(r.stderr).not.toContain('calibration:');
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('and prune --remove-layers the same, with the exact size', async () => {
    const { parent, out } = place('space-layers', false);
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out], { env: { SGT_FREE_BYTES: '300000' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_OUTPUT_NO_SPACE]');
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  // Real filesystems where this machine lets us mount them (root in CI containers does).
  const mountable = (() => {
    if (process.platform !== 'linux') return false;
    const probe = fs.mkdtempSync('/tmp/sgpt-mount-probe-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
      execFileSync('umount', [probe], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    } finally {
      fs.rmdirSync(probe);
    }
  })();
  const onTmpfs = mountable ? it : it.skip;

  onTmpfs('a real tmpfs too small for the model, and a read-only one, are refused up front', async () => {
    const small = path.join(root, 'small-fs');
    const ro = path.join(root, 'ro-fs');
    fs.mkdirSync(small);
    fs.mkdirSync(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', small]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,ro', 'tmpfs', ro]);
    try {
      const full = await runCli(['prune', src, '--calib', tinyStoriesText, '--samples', '4', '--remove', '1', '--out', path.join(small, 'out')], { preload: [] });
      expect(full.code).toBe(1);
      expect(full.stderr).toContain(`[ERR_OUTPUT_NO_SPACE]: not enough space for ${path.join(small, 'out')}`);
      expect(full.stderr).not.toContain('calibration:');
      expect(fs.readdirSync(small)).toEqual([]);
      const readOnly = await runCli(['prune', src, '--calib', tinyStoriesText, '--samples', '4', '--remove', '1', '--out', path.join(ro, 'out')], { preload: [] });
      expect(readOnly.code).toBe(1);
      expect(readOnly.stderr).toMatch(/\[ERR_OUTPUT_NOT_WRITABLE\]: cannot write .*ro-fs\/\.out\.lock/);
      expect(readOnly.stderr).not.toContain('calibration:');
    } finally {
      execFileSync('umount', [small]);
      execFileSync('umount', [ro]);
    }
  });
});
