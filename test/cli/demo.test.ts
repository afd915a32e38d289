/**
 * `shortgpt-native demo` through the CLI dispatcher: the bundled model and text, one layer
 * removed, perplexity before and after, the pruned model written where it says; --json is one
 * JSON document on stdout and nothing else there.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import type { PruneReport } from '../../lib/report/types';
import { capture } from '../helpers/io';
import { shellSplit } from '../helpers/shell';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-demo-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('--json: one JSON report on stdout; the pruned model and its report in --out', async () => {
  const io = capture();
  const out = path.join(tmp, 'json');
  const status = await main(['demo', '--json', '--out', out, '--threads', '2'], io);
  expect(io.err()).not.toMatch(/error/);
  expect(status).toBe(0);
  const report = JSON.parse(io.out()) as PruneReport;
  expect(report.schema).toBe('shortgpt-native/prune-report');
  expect(report.model.numLayers).toBe(5);
  expect(report.removedLayers).toEqual([2]); // stories260k's lowest Block Influence (golden ranking)
  expect(report.model.output).toBe(path.resolve(out));
  expect(report.perplexity!.after).toBeGreaterThan(report.perplexity!.before);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'report.json', 'report.md', 'chart.svg']) {
    expect(fs.existsSync(path.join(out, f))).toBe(true);
  }
});

it('text: says what it removed, the perplexities, and where it wrote the model (a new temporary directory)', async () => {
  const io = capture();
  const status = await main(['demo', '--threads', '2', '--quiet'], io);
  expect(status).toBe(0);
  const text = io.out();
  expect(text).toMatch(/remove layers \(0-based\): 2 {2}\(5 -> 4 layers\)/);
  expect(text).toMatch(/perplexity on .* -> .* \(rose by [\d.]+%\)/);
  const wrote = /wrote (\S+) /.exec(text);
  expect(wrote).not.toBeNull();
  const dir = wrote![1];
  expect(dir.startsWith(os.tmpdir())).toBe(true);
  expect(fs.existsSync(path.join(dir, 'report.md'))).toBe(true);
  expect(io.err()).toBe('');

  // The prune command it prints runs as printed (the demo's OUT exists now, so it names a new
  // one) and makes the same cut.
  const printed = /the same cut with the prune command.*:\n {2}npx shortgpt-native (.+)\n/.exec(text);
  expect(printed).not.toBeNull();
  const argv = shellSplit(printed![1]);
  const out = argv[argv.indexOf('--out') + 1];
  expect(out).not.toBe(dir);
  expect(fs.existsSync(out)).toBe(false);
  const again = capture();
  expect(await main([...argv, '--quiet'], again)).toBe(0);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as PruneReport;
  expect(report.removedLayers).toEqual([2]);
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
});
