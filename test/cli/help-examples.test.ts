/**
 * Every worked example at the top of a command's --help, run as printed (from a fresh working
 * directory, as a user would paste it):
 * - examples on the bundled model and text, and those needing no model (doctor, demo), run to
 *   exit 0; bench's with a tiny shape, one layer and few tokens appended (later values win),
 *   since a full bench takes minutes: the options as printed are still parsed and used;
 * - examples that name a model the user would have (./Llama-3.1-8B, a hub id) get past option
 *   parsing and fail only because that model is not here: exit 1, naming it, no usage hint.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { shellWord } from '../../lib/cli/examples';
import { main } from '../../lib/cli/main';
import { commands } from '../../lib/cli/registry';
import { capture } from '../helpers/io';
import { shellSplit } from '../helpers/shell';

function examplesOf(help: string): string[][] {
  const block = help.slice(0, help.indexOf('\n\n'));
  return block.split('\n').filter((l) => l.startsWith('  shortgpt-native ')).map((l) => shellSplit(l.trim()).slice(1));
}

const PLACEHOLDER = /Llama-[\w.-]+/;
/** Appended to a bench example (the last value of an option wins): a tiny shape, one layer, one pass. */
const BENCH_QUICK = [
  '--hidden', '64', '--intermediate', '128', '--heads', '4', '--kv-heads', '2', '--vocab', '256', '--layers', '2',
  '--layers-to-run', '1', '--seq-len', '16', '--gemm-iterations', '0', '--runs', '1', '--warmup', '0',
];

let cwd: string;
let tmp: string;
const savedHubCache = process.env.HF_HUB_CACHE;
beforeAll(() => {
  cwd = process.cwd();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-help-examples-'));
  // An empty Hugging Face cache, so a hub-id example cannot find a model someone downloaded.
  fs.mkdirSync(path.join(tmp, 'hf-cache'));
  process.env.HF_HUB_CACHE = path.join(tmp, 'hf-cache');
});
afterAll(() => {
  process.chdir(cwd);
  if (savedHubCache === undefined) delete process.env.HF_HUB_CACHE;
  else process.env.HF_HUB_CACHE = savedHubCache;
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('paths the help and the demo print are read back whole by a shell', () => {
  for (const p of ['/plain/path', "/a b/it's", '/x/$HOME/*', 'C:\\models\\llama', 'tab\there']) {
    // By a real shell, and by the splitter these tests use.
    expect(spawnSync('sh', ['-c', `printf '%s\\0' ${shellWord(p)} x`], { encoding: 'utf8' }).stdout).toBe(`${p}\0x\0`);
    expect(shellSplit(`prune ${shellWord(p)} --out x`)).toEqual(['prune', p, '--out', 'x']);
  }
});

describe.each(commands.map((c) => c.name))('%s --help examples', (name) => {
  it('run as printed', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
    process.chdir(dir);
    try {
      const help = capture();
      expect(await main([name, '--help'], help)).toBe(0);
      const examples = examplesOf(help.out());
      expect(examples.length).toBeGreaterThanOrEqual(2);
      for (const argv of examples) {
        expect(argv[0]).toBe(name);
        const placeholder = argv.map((a) => PLACEHOLDER.exec(a)?.[0]).find((m) => m !== undefined);
        // Without --shape, bench runs preset S; with shape numbers appended it must be said.
        const quick = [...(argv.includes('--shape') ? [] : ['--shape', 'S']), ...BENCH_QUICK];
        const run = name === 'bench' && placeholder === undefined ? [...argv, ...quick] : argv;
        const io = capture();
        const status = await main(run, io);
        const context = `${argv.join(' ')}\nstdout: ${io.out().slice(0, 2000)}\nstderr: ${io.err()}`;
        if (placeholder !== undefined) {
          expect({ context, status }).toEqual({ context, status: 1 });
          expect(io.err()).toContain(placeholder);
          expect(io.err()).not.toMatch(/--help` for usage/);
        } else {
          expect({ context, status }).toEqual({ context, status: 0 });
          // The demo's default output goes to a new temporary directory: remove it.
          const wrote = /^wrote (\S+)/m.exec(io.out()) ?? /"output": "([^"]+)"/.exec(io.out());
          if (name === 'demo' && wrote && wrote[1].startsWith(os.tmpdir()) && !wrote[1].startsWith(tmp)) {
            fs.rmSync(path.dirname(wrote[1]), { recursive: true, force: true });
          }
        }
      }
      if (name === 'prune') {
        // The runnable prune example wrote where it said, relative to the working directory.
        expect(fs.existsSync(path.join(dir, 'stories260k-pruned', 'mergekit.yaml'))).toBe(true);
      }
    } finally {
      process.chdir(cwd);
    }
  });
});
