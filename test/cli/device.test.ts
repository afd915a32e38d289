/**
 * `--device auto|cpu|cuda` on score, eval, prune (by score) and demo, and the library's
 * prune({device}). CUDA is made unusable on purpose (SHORTGPT_CUDA_LIB names a file that does
 * not exist, so the probe child cannot load the backend), so these cases mean the same on a
 * machine with a GPU: auto -> cpu with the reason, cuda -> ERR_CUDA_UNAVAILABLE. The CUDA
 * backend's own results are test/engine/parity.test.ts's job.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { resetCudaProbe } from '../../lib/engine/device';
import { prune } from '../../lib/prune/prune';
import type { PruneReport } from '../../lib/report/types';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';
import { loadGoldenTokens } from '../helpers/golden';

const missingCudaLib = '/nonexistent/shortgpt-device-test/libshortgpt_cuda.so';
let savedCudaLib: string | undefined;
let tmp: string;
let tokensFile: string;

beforeAll(() => {
  savedCudaLib = process.env.SHORTGPT_CUDA_LIB;
  process.env.SHORTGPT_CUDA_LIB = missingCudaLib;
  resetCudaProbe();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-device-test-'));
  // Six golden windows: enough for every command, small enough to keep this file quick.
  const golden = loadGoldenTokens();
  tokensFile = path.join(tmp, 'tokens.json');
  fs.writeFileSync(tokensFile, JSON.stringify(golden.slice(0, 6)));
});

afterAll(() => {
  if (savedCudaLib === undefined) delete process.env.SHORTGPT_CUDA_LIB;
  else process.env.SHORTGPT_CUDA_LIB = savedCudaLib;
  resetCudaProbe();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const io = capture();
  const status = await main(args, io);
  return { status, out: io.out(), err: io.err() };
}

const autoReason = /^device: cpu \(auto: CUDA not usable: .*shortgpt-device-test.*\)$/m;

describe.each([
  ['score', (d: string[]) => ['score', stories260kDir, '--tokens', tokensFile, '--threads', '2', ...d]],
  ['eval', (d: string[]) => ['eval', stories260kDir, '--tokens', tokensFile, '--threads', '2', ...d]],
])('%s', (name, args) => {
  it('--device cpu and auto (-> cpu) give identical results; --json carries "device"; no device line with --json', async () => {
    const cpu = await run(args(['--device', 'cpu', '--json']));
    const auto = await run(args(['--device', 'auto', '--json']));
    const dflt = await run(args(['--json']));
    for (const r of [cpu, auto, dflt]) {
      expect(r.status).toBe(0);
      expect(r.err).toBe('');
    }
    const docs = [cpu, auto, dflt].map((r) => JSON.parse(r.out) as Record<string, unknown>);
    for (const d of docs) expect(d.device).toBe('cpu');
    expect(docs[1]).toEqual(docs[0]);
    expect(docs[2]).toEqual(docs[0]);
  });

  it('text output: the one-line reason on stderr (auto says why not CUDA), none with --quiet', async () => {
    const auto = await run(args([]));
    expect(auto.status).toBe(0);
    expect(auto.err).toMatch(autoReason);
    const cpu = await run(args(['--device', 'cpu']));
    expect(cpu.err).toMatch(/^device: cpu \(requested\)$/m);
    const quiet = await run(args(['--quiet']));
    expect(quiet.status).toBe(0);
    expect(quiet.err).toBe('');
  });

  it('--device cuda without CUDA: exit 1, ERR_CUDA_UNAVAILABLE with the probe\'s reason, nothing on stdout', async () => {
    const r = await run(args(['--device', 'cuda', '--json']));
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_CUDA_UNAVAILABLE\]: --device cuda: CUDA is not usable: this build has no CUDA backend: \/nonexistent\/shortgpt-device-test/);
    expect(r.out).toBe('');
  });

  it('--device bogus: exit 2 naming --device and the choices', async () => {
    const r = await run(args(['--device', 'gpu']));
    expect(r.status).toBe(2);
    expect(r.err).toContain(`${name}: --device must be one of auto, cpu, cuda; got 'gpu'`);
  });
});

describe('prune (by score)', () => {
  const args = (out: string, d: string[]) => ['prune', stories260kDir, '--calib', tokensFile, '--remove', '1', '--out', out, '--threads', '2', ...d];

  it('--device auto -> cpu: the same cut as --device cpu, "device" in the JSON report', async () => {
    const a = await run(args(path.join(tmp, 'prune-auto'), ['--device', 'auto', '--json']));
    const c = await run(args(path.join(tmp, 'prune-cpu'), ['--device', 'cpu', '--json']));
    for (const r of [a, c]) {
      expect(r.status).toBe(0);
      expect(r.err).not.toMatch(/^device:/m); // prune's notes stay on stderr; the device line does not with --json
    }
    const [ra, rc] = [a, c].map((r) => JSON.parse(r.out) as PruneReport & { device: string });
    expect(ra.device).toBe('cpu');
    expect(rc.device).toBe('cpu');
    expect(ra.removedLayers).toEqual(rc.removedLayers);
    expect(ra.layers).toEqual(rc.layers);
    expect(fs.existsSync(path.join(tmp, 'prune-auto', 'model.safetensors'))).toBe(true);
  });

  it('--dry-run prints the reason on stderr too', async () => {
    const r = await run(['prune', stories260kDir, '--calib', tokensFile, '--remove', '1', '--dry-run', '--threads', '2']);
    expect(r.status).toBe(0);
    expect(r.err).toMatch(autoReason);
  });

  it('--device cuda without CUDA: exit 1 with ERR_CUDA_UNAVAILABLE and nothing written', async () => {
    const out = path.join(tmp, 'prune-cuda');
    const before = fs.readdirSync(tmp).sort();
    const r = await run(args(out, ['--device', 'cuda']));
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_CUDA_UNAVAILABLE\]: --device cuda: CUDA is not usable: /);
    expect(r.out).toBe('');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).sort()).toEqual(before); // no temporary directory left beside it either
  });

  it('--device bogus: exit 2, on the scoring path and with --remove-layers (which ignores a valid --device)', async () => {
    const byScore = await run(args(path.join(tmp, 'prune-bogus'), ['--device', 'bogus']));
    expect(byScore.status).toBe(2);
    expect(byScore.err).toContain("prune: --device must be one of auto, cpu, cuda; got 'bogus'");
    const named = await run(['prune', stories260kDir, '--remove-layers', '2', '--out', path.join(tmp, 'named-bogus'), '--device', 'bogus']);
    expect(named.status).toBe(2);
    expect(named.err).toContain('--device must be one of');
    const ok = await run(['prune', stories260kDir, '--remove-layers', '2', '--out', path.join(tmp, 'named-cuda'), '--device', 'cuda', '--json']);
    expect(ok.status).toBe(0); // nothing computes, so there is no device to refuse
    expect(fs.existsSync(path.join(tmp, 'named-cuda', 'model.safetensors'))).toBe(true);
  });
});

describe('demo', () => {
  it('--device auto --json: "device": "cpu", the usual cut', async () => {
    const out = path.join(tmp, 'demo-auto');
    const r = await run(['demo', '--device', 'auto', '--json', '--out', out, '--threads', '2']);
    expect(r.status).toBe(0);
    expect(r.err).not.toMatch(/^device:/m);
    const report = JSON.parse(r.out) as PruneReport & { device: string };
    expect(report.device).toBe('cpu');
    expect(report.removedLayers).toEqual([2]);
  });

  it('--device cuda: exit 1, nothing written; --device bogus: exit 2', async () => {
    const out = path.join(tmp, 'demo-cuda');
    const r = await run(['demo', '--device', 'cuda', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.err).toContain('[ERR_CUDA_UNAVAILABLE]');
    expect(fs.existsSync(out)).toBe(false);
    const bogus = await run(['demo', '--device', 'CPU']);
    expect(bogus.status).toBe(2);
    expect(bogus.err).toContain("demo: --device must be one of auto, cpu, cuda; got 'CPU'");
  });
});

// prune's help is kept short: it states the rule and points at score --help for the precision.
it('prune --help documents --device and points at score --help for the CUDA precision', async () => {
  const r = await run(['prune', '--help']);
  expect(r.status).toBe(0);
  expect(r.out).toContain('--device D');
  expect(r.out).toContain('auto (default), cpu or cuda');
  expect(r.out).toContain('cuda where CUDA is not usable is an error');
  expect(r.out).toContain('shortgpt-native score --help');
});

it.each(['score', 'eval', 'demo'])('%s --help documents --device and the TF32 default for F32 checkpoints', async (name) => {
  const r = await run([name, '--help']);
  expect(r.status).toBe(0);
  expect(r.out).toContain('--device D');
  expect(r.out).toContain('auto (default), cpu or cuda');
  expect(r.out).toMatch(/F32 checkpoints' matrix products run as TF32/);
  expect(r.out).toContain('ERR_CUDA_UNAVAILABLE');
});

describe('library prune()', () => {
  // A getter: tokensFile is written in beforeAll.
  const options = (): { calib: string; remove: number; dryRun: boolean; threads: number } => ({ calib: tokensFile, remove: 1, dryRun: true, threads: 2 });

  it("device: 'cpu' gives the same plan and scores as the default", async () => {
    const cpu = await prune(stories260kDir, { ...options(), device: 'cpu' });
    const dflt = await prune(stories260kDir, options());
    expect(cpu.plan.removed).toEqual(dflt.plan.removed);
    expect(cpu.scores).toEqual(dflt.scores);
  });

  it("device: 'cuda' without CUDA rejects with ERR_CUDA_UNAVAILABLE before writing anything", async () => {
    const out = path.join(tmp, 'lib-cuda');
    await expect(prune(stories260kDir, { ...options(), dryRun: false, out, device: 'cuda' })).rejects.toMatchObject({ code: 'ERR_CUDA_UNAVAILABLE' });
    expect(fs.existsSync(out)).toBe(false);
  });

  it("device: 'auto' is not a backend: ERR_INVALID_ARG pointing at resolveDevice", async () => {
    const bad = { ...options(), device: 'auto' as unknown as 'cpu' };
    await expect(prune(stories260kDir, bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('resolveDevice') });
  });
});
