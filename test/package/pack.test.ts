/**
 * The published package must work for a user of npm 11, which does not run a dependency's
 * install scripts: `npm pack`, install the tarball into a fresh project with default settings,
 * and `npx shortgpt-native doctor` there must load the prebuilt binary.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers/paths';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

describe('npm pack -> install -> npx doctor', () => {
  let work: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-pack-'));
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('installs from the tarball with no install script and loads the prebuilt addon', () => {
    // The prebuilt binary is what `npm pack` ships (prepack runs the same script); scripts are
    // skipped here because dist/ and build/ already exist in a built checkout.
    execFileSync(process.execPath, [path.join(repoRoot, 'scripts', 'prebuild.js')], { cwd: repoRoot, stdio: 'pipe' });
    const packJson = execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: repoRoot, encoding: 'utf8' });
    const [packed] = JSON.parse(packJson) as { filename: string; files: { path: string }[] }[];
    const files = packed.files.map((f) => f.path);
    expect(files).toContain('prebuilds/linux-x64/shortgpt-native.napi.node');
    expect(files).toContain('dist/lib/cli/main.js');
    expect(files).toContain('binding.d.ts');
    expect(files.some((f) => f.startsWith('test/') || f.startsWith('build/'))).toBe(false);
    // The published package must not depend on an install script.
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    for (const hook of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts[hook]).toBeUndefined();

    const project = path.join(work, 'user-project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true }));
    execFileSync(npm, ['install', '--no-audit', '--no-fund', path.join(work, packed.filename)], { cwd: project, stdio: 'pipe' });
    const out = execFileSync(npx, ['shortgpt-native', 'doctor', '--json'], { cwd: project, encoding: 'utf8' });
    const report = JSON.parse(out) as { addon: { loaded: boolean; path: string; backends: string[] } };
    expect(report.addon.loaded).toBe(true);
    expect(report.addon.path).toContain(path.join('node_modules', 'shortgpt-native', 'prebuilds'));
    expect(report.addon.backends).toContain('cpu');
  }, 300000);
});
