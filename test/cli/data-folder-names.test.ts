/**
 * A calibration folder's file names reach the terminal in the "skipped ... not data" note and the
 * "holds no data" error: a name holding an escape sequence must come out escaped.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sgpt-foldernames-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

it('skipped names in a calibration folder are escaped, in the note and in the empty-folder error', async () => {
  const folder = path.join(root, 'corpus');
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, 'evil\x1b[2J\x1b[31m'), 'x\n');
  const empty = capture();
  expect(await main(['score', stories260kDir, '--calib', folder, '--samples', '1'], empty)).toBe(1);
  expect(empty.err()).toContain('e.g. evil\\x1b[2J\\x1b[31m');
  expect(empty.err()).not.toContain('\x1b');
  fs.copyFileSync(tinyStoriesText, path.join(folder, 'stories.txt'));
  const io = capture();
  expect(await main(['score', stories260kDir, '--calib', folder, '--samples', '4', '--seq-len', '32', '--threads', '2', '--json'], io)).toBe(0);
  expect(io.err()).toContain(`folder ${folder}: skipped 1 file that is not data: evil\\x1b[2J\\x1b[31m`);
  expect(io.err()).not.toContain('\x1b');
});
