/**
 * The README's library example, run as written: the ```ts block under "## Library" is extracted,
 * and only the package's location is substituted (the example imports 'shortgpt-native' and
 * reads node_modules/shortgpt-native/assets/..., as in a project that installed it; here the
 * package is this checkout) plus where it writes, a temporary directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers/paths';
import { readmeLibraryExample } from '../helpers/readme';

it('runs, prints the scores and the removed layer, and writes the pruned model with its report', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-readme-'));
  try {
    const src = readmeLibraryExample();
    expect(src).toContain("from 'shortgpt-native'");
    const runnable = src
      .replace("from 'shortgpt-native'", `from ${JSON.stringify(path.join(repoRoot, 'lib', 'index'))}`)
      .split('node_modules/shortgpt-native/').join(`${repoRoot}/`)
      .replace("'stories260k-pruned'", JSON.stringify(path.join(tmp, 'stories260k-pruned')))
      .replace(/main\(\)\.catch\([\s\S]*$/, 'export const done = main();\n');
    const file = path.join(tmp, 'example.ts');
    fs.writeFileSync(file, runnable);
    const logs: string[] = [];
    const spy = jest.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      logs.push(args.map(String).join(' '));
    });
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      await (require(file) as { done: Promise<void> }).done;
    } finally {
      spy.mockRestore();
    }
    expect(logs.join('\n')).toMatch(/least influential layer: \d/);
    expect(logs.join('\n')).toMatch(/removed \d; perplexity [\d.]+ -> [\d.]+/);
    for (const f of ['report.json', 'report.md', 'chart.svg', 'model.safetensors']) {
      expect(fs.existsSync(path.join(tmp, 'stories260k-pruned', f))).toBe(true);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
