/**
 * `prune --eval DATA` stops reading the held-out data at --max-calib-tokens like any data: the
 * perplexity is then of its start only, which must be said (stderr, report.json, report.md),
 * as `eval --data` says it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sgpt-evallimit-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

it('prune --eval cut at --max-calib-tokens warns on stderr and in report.json / report.md', async () => {
  const out = path.join(root, 'out');
  const io = capture();
  const code = await main(
    ['prune', stories260kDir, '--calib', tinyStoriesText, '--samples', '16', '--seq-len', '64', '--remove', '1', '--eval', tinyStoriesText, '--max-calib-tokens', '3000', '--out', out, '--threads', '2', '--json'],
    io,
  );
  expect([code, io.err()]).toEqual([0, expect.any(String)]);
  const limit = '--eval data reached the --max-calib-tokens limit of 3,000 tokens: the rest was not read';
  expect(io.err()).toContain(`warning: ${limit}`);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { perplexity: { warnings: string[] } };
  expect(report.perplexity.warnings).toEqual([expect.stringContaining(limit)]);
  expect(JSON.parse(io.out()).perplexity.warnings).toEqual(report.perplexity.warnings);
  expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toContain(`- **Warning:** ${limit}`);
});
