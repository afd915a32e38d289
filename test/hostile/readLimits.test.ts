/**
 * Issue 10, items 3 and 4 (and the shard wording of item 9), through the CLI as a child process
 * with a capped V8 heap, a peak-RSS watchdog (/proc/PID/status VmHWM) and a wall-clock limit:
 * - calibration input is read as a stream and stops at --max-calib-tokens: /dev/zero and
 *   /dev/urandom are refused before a byte is read, `yes | ... --calib -` ends at the limit,
 *   one document with no separator costs what its tokens cost, a huge JSONL line is refused;
 * - every file the product reads is a regular file of bounded size: tokenizer.json -> /dev/zero
 *   (once a native std::bad_alloc at 16.8 GB) and a FIFO as config.json or --calib (once a hang)
 *   are refused, naming the file; a shard that is a directory or device says so.
 * The old behaviour (gigabytes, a V8 abort, a hang) fails these tests rather than passing slowly.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { vmHwm } from './helpers/cliProcess';

const CLI = path.join(__dirname, '..', 'prune', 'helpers', 'cli.js');
const MiB = 1024 * 1024;
/** Peak RSS of a refusal: the CLI's own baseline (swc-transpiled sources, addon) is ~100-150 MB. */
const REFUSAL_RSS = 300 * MiB;

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  peakRss: number;
  seconds: number;
}

/**
 * The CLI with `args`; `stdinFrom` is a command whose output is piped into the CLI's stdin
 * (`yes`, `cat /dev/urandom`), as a shell pipeline would.
 */
function cli(args: string[], opts: { heapMiB?: number; timeoutMs?: number; stdinFrom?: string[] } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [`--max-old-space-size=${opts.heapMiB ?? 256}`, CLI, ...args], {
      env: { ...process.env, SHORTGPT_DEBUG: '', NO_COLOR: '1' },
      stdio: [opts.stdinFrom ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    let feeder: ReturnType<typeof spawn> | undefined;
    if (opts.stdinFrom) {
      feeder = spawn(opts.stdinFrom[0], opts.stdinFrom.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
      feeder.stdout!.pipe(child.stdin!);
      child.stdin!.on('error', () => undefined); // EPIPE once the CLI stops reading: what `yes` gets too
    }
    let stdout = '';
    let stderr = '';
    let peak = 0;
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const watch = setInterval(() => { peak = Math.max(peak, vmHwm(child.pid!)); }, 20);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearInterval(watch);
      clearTimeout(timer);
      feeder?.kill('SIGKILL');
      resolve({ status, signal, stdout, stderr, peakRss: peak, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-hostile-reads-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of stories260k whose `file` is replaced by `make(pathOfIt)`. */
function modelWith(name: string, file: string, make: (p: string) => void): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(stories260kDir)) if (f !== file) fs.copyFileSync(path.join(stories260kDir, f), path.join(dir, f));
  make(path.join(dir, file));
  return dir;
}

const mkfifo = (p: string): void => {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`);
};

describe('calibration input is bounded', () => {
  it.each(['/dev/zero', '/dev/urandom'])('--calib %s is refused as a device before anything is read', async (dev) => {
    const r = await cli(['score', stories260kDir, '--calib', dev], { heapMiB: 128 });
    expect(r.stderr).toContain(`[ERR_NOT_REGULAR_FILE]: calibration data ${dev} is a character device, not a regular file; to read a pipe or a stream, give - and pipe it into stdin`);
    expect(r.status).toBe(1);
    expect(r.peakRss).toBeLessThan(REFUSAL_RSS);
  });

  it('random bytes piped into --calib - are refused as binary from the first chunk', async () => {
    const r = await cli(['score', stories260kDir, '--calib', '-'], { heapMiB: 128, stdinFrom: ['cat', '/dev/urandom'] });
    expect(r.stderr).toMatch(/\[ERR_DATA_BINARY\]: <stdin> is binary, not text \(a NUL byte at offset \d+\)/);
    expect(r.status).toBe(1);
    expect(r.peakRss).toBeLessThan(REFUSAL_RSS);
  });

  it('`yes | score --calib - --max-calib-tokens 20000` stops at the limit and says so, on stderr and in --json', async () => {
    const r = await cli(['score', stories260kDir, '--calib', '-', '--max-calib-tokens', '20000', '--samples', '4', '--json'], { heapMiB: 192, stdinFrom: ['yes'] });
    expect(r.status).toBe(0);
    const limit = 'calibration data reached the --max-calib-tokens limit of 20,000 tokens: the rest was not read';
    expect(r.stderr).toContain(limit);
    expect((JSON.parse(r.stdout) as { warnings: string[] }).warnings.join('\n')).toContain(limit);
    expect(r.peakRss).toBeLessThan(REFUSAL_RSS);
  });

  it('`yes | score --calib -` with the default limit ends in bounded memory', async () => {
    const r = await cli(['score', stories260kDir, '--calib', '-', '--samples', '4', '--json'], { heapMiB: 384, stdinFrom: ['yes'], timeoutMs: 120_000 });
    expect(r.stderr).toContain('reached the --max-calib-tokens limit of 4,194,304 tokens');
    expect(r.status).toBe(0);
    // 4 Mi tokens kept as ids and windows: ~100 MB above the baseline.
    expect(r.peakRss).toBeLessThan(700 * MiB);
  }, 130_000);

  it('one 1 MB document with no separator costs about what the same text split into documents costs', async () => {
    const stories = fs.readFileSync(tinyStoriesText, 'utf8');
    let joined = '';
    while (joined.length < 1_000_000) joined += stories;
    const split = path.join(tmp, 'split.txt');
    const one = path.join(tmp, 'one.txt');
    fs.writeFileSync(split, joined.slice(0, 1_000_000));
    fs.writeFileSync(one, joined.slice(0, 1_000_000).replace(/<\|endoftext\|>\n/g, ''));
    const a = await cli(['score', stories260kDir, '--calib', split, '--samples', '4', '--quiet'], { heapMiB: 256, timeoutMs: 60_000 });
    const b = await cli(['score', stories260kDir, '--calib', one, '--samples', '4', '--quiet'], { heapMiB: 256, timeoutMs: 60_000 });
    expect([a.status, b.status]).toEqual([0, 0]);
    // Before: 9x the memory (and 5x the time) of the split text; a V8 abort under this heap cap.
    expect(b.peakRss).toBeLessThan(a.peakRss * 1.5);
  }, 130_000);

  it('a JSONL line longer than 64 Mi characters is refused, naming file and line, without holding it all', async () => {
    const file = path.join(tmp, 'long-line.jsonl');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, '{"text": "a short first record"}\n{"text": "');
    const block = Buffer.alloc(MiB, 'word ');
    for (let i = 0; i < 65; i++) fs.writeSync(fd, block);
    fs.writeSync(fd, '"}\n');
    fs.closeSync(fd);
    const r = await cli(['score', stories260kDir, '--calib', file], { heapMiB: 256 });
    expect(r.stderr).toContain(`[ERR_DATA_RECORD_TOO_LARGE]: ${file}:2: a JSONL record (line) longer than 64 Mi characters`);
    expect(r.status).toBe(1);
    expect(r.peakRss).toBeLessThan(500 * MiB);
    fs.rmSync(file);
  });

  it('a 60 MB JSONL record is read and tokenized in pieces up to the token limit', async () => {
    const file = path.join(tmp, 'big-record.jsonl');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, '{"text": "');
    const block = Buffer.alloc(MiB, 'Once upon a time there was a cat. ');
    for (let i = 0; i < 60; i++) fs.writeSync(fd, block);
    fs.writeSync(fd, '"}\n');
    fs.closeSync(fd);
    const r = await cli(['score', stories260kDir, '--calib', file, '--max-calib-tokens', '50000', '--samples', '4'], { heapMiB: 512 });
    expect(r.stderr).toContain('reached the --max-calib-tokens limit of 50,000 tokens');
    expect(r.status).toBe(0);
    expect(r.peakRss).toBeLessThan(800 * MiB);
    fs.rmSync(file);
  });

  it('a FIFO as --calib is refused at once (no writer: opening it would block forever)', async () => {
    const fifo = path.join(tmp, 'calib-fifo');
    mkfifo(fifo);
    const r = await cli(['score', stories260kDir, '--calib', fifo], { heapMiB: 128, timeoutMs: 15_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain(`[ERR_NOT_REGULAR_FILE]: calibration data ${fifo} is a FIFO (named pipe), not a regular file; to read a pipe or a stream, give -`);
    expect(r.status).toBe(1);
  });

  it('process substitution (`--calib <(cmd)`, a pipe the shell already feeds) is still read', () => {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" --max-old-space-size=128 "${CLI}" score "${stories260kDir}" --calib <(head -c 20000 "${tinyStoriesText}") --samples 4 --json`], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, SHORTGPT_DEBUG: '', NO_COLOR: '1' },
    });
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { layers: unknown[] }).layers).toHaveLength(5);
  });
});

describe('model files are regular files of bounded size', () => {
  it('tokenizer.json -> /dev/zero is refused, naming it, in bounded memory (once std::bad_alloc at 16.8 GB)', async () => {
    const model = modelWith('tok-zero', 'tokenizer.json', (p) => fs.symlinkSync('/dev/zero', p));
    const r = await cli(['score', model, '--calib', tinyStoriesText], { heapMiB: 128 });
    expect(r.stderr).toContain(`[ERR_NOT_REGULAR_FILE]: tokenizer file ${path.join(model, 'tokenizer.json')} is a character device, not a regular file`);
    expect(r.status).toBe(1);
    expect(r.peakRss).toBeLessThan(REFUSAL_RSS);
  });

  it('a 300 MiB (sparse) tokenizer.json is refused by its size before it is read', async () => {
    const model = modelWith('tok-huge', 'tokenizer.json', (p) => fs.truncateSync((fs.writeFileSync(p, ''), p), 300 * MiB));
    const r = await cli(['score', model, '--calib', tinyStoriesText], { heapMiB: 128 });
    expect(r.stderr).toContain(`[ERR_FILE_TOO_LARGE]: tokenizer file ${path.join(model, 'tokenizer.json')} is 300.0 MiB, above the 256.0 MiB limit for a tokenizer file`);
    expect(r.status).toBe(1);
    expect(r.peakRss).toBeLessThan(REFUSAL_RSS);
  });

  it('a FIFO as config.json is refused at once, not waited on', async () => {
    const model = modelWith('cfg-fifo', 'config.json', mkfifo);
    const r = await cli(['inspect', model], { heapMiB: 128, timeoutMs: 15_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toContain(`[ERR_NOT_REGULAR_FILE]: model config ${path.join(model, 'config.json')} is a FIFO (named pipe), not a regular file`);
    expect(r.status).toBe(1);
  });

  it.each([
    ['a directory', (p: string) => fs.mkdirSync(p)],
    ['a character device', (p: string) => fs.symlinkSync('/dev/zero', p)],
  ])('a shard that is %s is named as such, not as missing', async (kind, make) => {
    const dir = path.join(tmp, `shard-${kind.replace(/ /g, '-')}`);
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(stories260kDir)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(stories260kDir, f), path.join(dir, f));
    // A one-shard index: every tensor in model-00001-of-00001.safetensors, which is not a file.
    const header = JSON.parse(readHeader(path.join(stories260kDir, 'model.safetensors'))) as Record<string, unknown>;
    const weightMap = Object.fromEntries(Object.keys(header).filter((k) => k !== '__metadata__').map((k) => [k, 'model-00001-of-00001.safetensors']));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    make(path.join(dir, 'model-00001-of-00001.safetensors'));
    const r = await cli(['inspect', dir], { heapMiB: 128, timeoutMs: 15_000 });
    expect(r.stderr).toContain(`[ERR_NOT_REGULAR_FILE]: ${path.join(dir, 'model.safetensors.index.json')}: shard 'model-00001-of-00001.safetensors' is ${kind}`);
    expect(r.stderr).not.toContain('does not exist');
    expect(r.status).toBe(1);
  });
});

function readHeader(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const buf = Buffer.alloc(n);
    fs.readSync(fd, buf, 0, n, 8);
    return buf.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
