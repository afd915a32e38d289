/**
 * The writer's own files beside OUT (lock, swap journal) and the model folder's card, when
 * something hostile sits at their names: a FIFO must not hang the run, a failed --force swap
 * must not lose both copies.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShortGptError } from '../../lib/errors';
import { outputError } from '../../lib/prune/durable';
import { tempRoot } from '../prune/helpers/rawCheckpoint';
import { stories260kDir } from '../helpers/paths';
import { contentOf, placeOut, runCli, strays } from './helpers/writerRun';

let root: string;
let src: string;
beforeAll(() => {
  root = tempRoot('sgpt-special-');
  src = path.join(root, 'model');
  fs.cpSync(stories260kDir, src, { recursive: true });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const pruneHelpers = path.join(__dirname, '..', 'prune', 'helpers');

/** The CLI, killed after `ms` (SIGKILL: a main thread blocked in open() ignores SIGTERM), so a hang fails the test instead of the suite. */
function runWithWatchdog(args: string[], ms: number, preload: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  const child = spawn(process.execPath, [...preload.flatMap((p) => ['-r', p]), '-r', path.join(pruneHelpers, 'tsRequire.js'), path.join(pruneHelpers, 'cli.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, ms);
  child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
  child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    }),
  );
}

describe('a FIFO at the name of the lock or the swap journal', () => {
  for (const [name, file, what] of [
    ['lock', '.out.lock', 'output lock file'],
    ['journal', '.out.swap', 'swap journal'],
  ] as const) {
    it(`${name}: a clear error naming it, no hang`, async () => {
      const { parent, out } = placeOut(root, `fifo-${name}`);
      const fifo = path.join(parent, file);
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const started = Date.now();
      const r = await runWithWatchdog(['prune', src, '--remove-layers', '1', '--out', out, '--quiet'], 20_000);
      expect(r.timedOut).toBe(false);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${what} ${fifo} is a FIFO (named pipe), not a regular file`);
      expect(fs.existsSync(out)).toBe(false);
    });
  }
});

describe('links out of the model folder, and hostile file names, in prune --remove-layers', () => {
  it('a README.md or shortgpt.json linked out of the folder is not read; names are escaped; each skipped file is reported once', async () => {
    const model = path.join(root, 'linked-model');
    fs.cpSync(stories260kDir, model, { recursive: true });
    const outside = path.join(root, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'card.md'), '---\nlicense: mit\n---\nSECRET-CARD-TEXT\n');
    fs.writeFileSync(path.join(outside, 'prov.json'), '{"secret":"SECRET-PROVENANCE"}\n');
    fs.rmSync(path.join(model, 'README.md'));
    fs.symlinkSync(path.join(outside, 'card.md'), path.join(model, 'README.md'));
    fs.symlinkSync(path.join(outside, 'prov.json'), path.join(model, 'shortgpt.json'));
    // A name with an escape sequence, copied, and a FIFO with one, skipped.
    fs.writeFileSync(path.join(model, 'notes\x1b[31m.txt'), 'hello\n');
    expect(spawnSync('mkfifo', [path.join(model, 'pipe\x1b[2J')]).status).toBe(0);
    const out = path.join(root, 'linked-out');
    const r = await runWithWatchdog(['prune', model, '--remove-layers', '1', '--out', out], 60_000);
    expect(r.code).toBe(0);
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).not.toContain('SECRET-CARD-TEXT');
    expect(card).toContain('**Removed:**');
    expect(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8')).not.toContain('SECRET-PROVENANCE');
    expect(r.stderr).toContain(`${path.join(model, 'README.md')}: not read: a symlink to ${path.join(outside, 'card.md')}, outside the model folder; a new model card was written instead`);
    expect(r.stderr).toContain(`${path.join(model, 'shortgpt.json')}: not read: a symlink to ${path.join(outside, 'prov.json')}, outside the model folder`);
    const all = r.stdout + r.stderr;
    expect(all).not.toContain('\x1b');
    expect(r.stdout).toContain('notes\\x1b[31m.txt');
    expect(all.split('pipe\\x1b[2J: not copied').length - 1).toBe(1);
  });
});

describe('a --force swap whose second rename fails', () => {
  let oldOut: string;
  beforeAll(async () => {
    oldOut = path.join(root, 'old-out');
    const r = await runCli(['prune', src, '--remove-layers', '3', '--out', oldOut, '--quiet'], { preload: [] });
    expect(r.code).toBe(0);
  });

  it('and whose restore fails too: both copies and the journal are kept, and the next run finishes the swap', async () => {
    const { parent, out } = placeOut(root, 'swap-stuck', oldOut);
    const args = ['prune', src, '--remove-layers', '1', '--out', out, '--force', '--quiet'];
    // Renames: 1 OUT -> old, 2 tmp -> OUT (fails), 3 old -> OUT (the restore; fails).
    const r = await runCli(args, { env: { SGT_FAIL_RENAME: '2,3' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('putting the previous copy back failed too');
    expect(fs.existsSync(out)).toBe(false);
    const left = strays(parent, []);
    const tmp = left.find((n) => n.startsWith('.out.tmp-'));
    const old = left.find((n) => n.startsWith('.out.old-'));
    expect(left).toContain('.out.swap');
    expect(tmp).toBeDefined();
    expect(old).toBeDefined();
    expect(contentOf(path.join(parent, old!))).toEqual(contentOf(oldOut));
    const newCopy = contentOf(path.join(parent, tmp!));
    expect(newCopy['model.safetensors']).toBeDefined();
    // The next run rolls the kept swap forward on taking the lock, then writes its own copy.
    const next = await runCli(args.filter((a) => a !== '--quiet'), { preload: [] });
    expect(next.code).toBe(0);
    expect(next.stderr).toContain(`finished the interrupted --force replacement of ${out}`);
    expect(contentOf(out)).toEqual(newCopy);
    expect(strays(parent, ['out'])).toEqual([]);
  });

  it('and whose restore succeeds: OUT is the old copy, and nothing is left beside it', async () => {
    const { parent, out } = placeOut(root, 'swap-restored', oldOut);
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--force', '--quiet'], { env: { SGT_FAIL_RENAME: '2' } });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('putting the previous copy back failed');
    expect(contentOf(out)).toEqual(contentOf(oldOut));
    expect(strays(parent, ['out'])).toEqual([]);
  });
});

describe('what the writer says about leftovers it cannot judge', () => {
  it('a lock of another host: locked, and it says that this host cannot tell whether that run is running', async () => {
    const { parent, out } = placeOut(root, 'lock-other-host');
    fs.writeFileSync(path.join(parent, '.out.lock'), JSON.stringify({ pid: 4242, startTime: 99, host: 'elsewhere.example', createdAt: '2020-01-01T00:00:00.000Z' }));
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--quiet'], { preload: [] });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`[ERR_OUTPUT_LOCKED]: output ${out} is locked by a shortgpt-native run on host elsewhere.example (pid 4242, since 2020-01-01T00:00:00.000Z); this host cannot tell whether it is still running`);
    expect(r.stderr).not.toContain('is being written');
  });

  it('a legacy temporary (pid only) whose pid runs: left alone, saying the pid may be another process', async () => {
    const { parent, out } = placeOut(root, 'legacy-live');
    const legacy = path.join(parent, `.out.tmp-${process.pid}-abcdef01`);
    fs.mkdirSync(legacy);
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out], { preload: [] });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`left ${legacy} alone: a process with its maker's pid ${process.pid} is running (the name records no start time, so it may be another process)`);
    expect(fs.existsSync(legacy)).toBe(true);
  });

  (process.getuid?.() === 0 ? it.skip : it)('an unreadable lock is said to be unreadable, not unwritable', async () => {
    const { parent, out } = placeOut(root, 'lock-unreadable');
    const lock = path.join(parent, '.out.lock');
    fs.writeFileSync(lock, '{}', { mode: 0o000 });
    const r = await runCli(['prune', src, '--remove-layers', '1', '--out', out, '--quiet'], { preload: [] });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`[ERR_OUTPUT_IO]: cannot read ${lock} (reading the lock)`);
  });
});

it('outputError words a forbidden read as a read, and a forbidden write as a write', () => {
  const eacces = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  const read = outputError(eacces, 'reading the lock', '/o/.out.lock', 'read') as ShortGptError;
  expect([read.code, read.message]).toEqual(['ERR_OUTPUT_IO', expect.stringContaining('cannot read /o/.out.lock (reading the lock): EACCES')]);
  expect(read.message).not.toContain('write');
  const write = outputError(eacces, 'creating the lock', '/o/.out.lock') as ShortGptError;
  expect([write.code, write.message]).toEqual(['ERR_OUTPUT_NOT_WRITABLE', expect.stringContaining('cannot write /o/.out.lock (creating the lock)')]);
});
