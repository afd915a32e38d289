/**
 * The cut as mergekit YAML appears three times: mergekit.yaml beside the weights, report.md, and
 * the --dry-run text. All three must be the same YAML, `dtype:` included.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sgpt-mkyaml-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

it('mergekit.yaml, report.md and the --dry-run text hold the same YAML, dtype included', async () => {
  const common = [stories260kDir, '--calib', tinyStoriesText, '--samples', '16', '--seq-len', '32', '--remove', '1', '--threads', '2', '--quiet'];
  const out = path.join(root, 'out');
  const run = capture();
  expect(await main(['prune', ...common, '--out', out], run)).toBe(0);
  const yaml = fs.readFileSync(path.join(out, 'mergekit.yaml'), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n').trim();
  expect(yaml).toContain('\ndtype: float32');
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  expect(md).toContain(`\`\`\`yaml\n${yaml}\n\`\`\``);
  const dry = capture();
  expect(await main(['prune', ...common, '--dry-run'], dry)).toBe(0);
  expect(dry.out()).toContain(yaml.split('\n').map((l) => `    ${l}`).join('\n'));
});
