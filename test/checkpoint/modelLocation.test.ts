/** MODEL -> directory: the hub cache lookup order and layout, without the CLI. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheFolderName, hubCacheDir, resolveModelLocation } from '../../lib/checkpoint/modelLocation';
import { suggestOption, editDistance } from '../../lib/cli/optionTypos';

describe('hubCacheDir follows huggingface_hub', () => {
  const home = os.homedir();
  it.each([
    [{ HF_HUB_CACHE: '/a/hub', HF_HOME: '/b' }, '/a/hub'],
    [{ HUGGINGFACE_HUB_CACHE: '/legacy', HF_HOME: '/b' }, '/legacy'],
    [{ HF_HOME: '/b' }, '/b/hub'],
    [{ XDG_CACHE_HOME: '/x' }, '/x/huggingface/hub'],
    [{ HF_HUB_CACHE: '' }, path.join(home, '.cache', 'huggingface', 'hub')],
    [{ HF_HOME: '~/hf' }, path.join(home, 'hf', 'hub')],
  ])('%j -> %s', (env, dir) => {
    expect(hubCacheDir(env)).toBe(dir);
  });

  it('names cache folders as repo_folder_name does', () => {
    expect(cacheFolderName('meta-llama/Llama-2-7b-hf')).toBe('models--meta-llama--Llama-2-7b-hf');
    expect(cacheFolderName('gpt2')).toBe('models--gpt2');
  });
});

describe('resolveModelLocation', () => {
  let tmp: string;
  const commit = 'abcdefabcdefabcdefabcdefabcdefabcdefabcd';
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sgpt-loc-'));
    for (const repo of ['models--org--name', 'models--gpt2']) {
      const snap = path.join(tmp, 'hub', repo, 'snapshots', commit);
      fs.mkdirSync(snap, { recursive: true });
      fs.mkdirSync(path.join(tmp, 'hub', repo, 'refs', 'refs', 'pr'), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'hub', repo, 'refs', 'main'), `${commit}\n`);
      fs.writeFileSync(path.join(tmp, 'hub', repo, 'refs', 'refs', 'pr', '1'), commit);
    }
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const env = () => ({ HF_HUB_CACHE: path.join(tmp, 'hub') });

  it('a hub id, a bare cached name and a PR ref resolve to the snapshot with provenance', () => {
    const snap = path.join(tmp, 'hub', 'models--org--name', 'snapshots', commit);
    expect(resolveModelLocation('org/name', { env: env() })).toEqual({
      dir: snap,
      hub: { repoId: 'org/name', cacheFolder: path.join(tmp, 'hub', 'models--org--name'), revision: 'main', commit },
    });
    expect(resolveModelLocation('gpt2', { env: env() }).hub?.repoId).toBe('gpt2');
    expect(resolveModelLocation('org/name', { env: env(), revision: 'refs/pr/1' }).dir).toBe(snap);
  });

  it('a local directory of the same name wins over the cache, as in transformers', () => {
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      fs.mkdirSync(path.join(tmp, 'org', 'name'), { recursive: true });
      expect(resolveModelLocation('org/name', { env: env() })).toEqual({ dir: path.join(tmp, 'org', 'name') });
    } finally {
      process.chdir(cwd);
      fs.rmSync(path.join(tmp, 'org'), { recursive: true });
    }
  });

  it('a ref naming a missing snapshot, and an unknown bare name, are errors', () => {
    fs.writeFileSync(path.join(tmp, 'hub', 'models--org--name', 'refs', 'broken'), 'f'.repeat(40));
    expect(() => resolveModelLocation('org/name', { env: env(), revision: 'broken' })).toThrow(expect.objectContaining({ code: 'ERR_MODEL_NOT_CACHED', message: expect.stringMatching(/interrupted download/) }));
    expect(() => resolveModelLocation('not-here', { env: env() })).toThrow(expect.objectContaining({ code: 'ERR_CHECKPOINT_DIR' }));
  });
});

describe('option suggestions', () => {
  it('distance counts a transposition as one edit', () => {
    expect(editDistance('remov', 'remove')).toBe(1);
    expect(editDistance('jsno', 'json')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests close options, prefixes of one option, and nothing far away', () => {
    const opts = ['remove', 'remove-layers', 'ratio', 'out', 'json', 'calib', 'seq-len', 'seed'];
    expect(suggestOption('remov', opts)).toBe('remove');
    expect(suggestOption('remove-lay', opts)).toBe('remove-layers');
    expect(suggestOption('JSON', opts)).toBe('json');
    expect(suggestOption('ot', opts)).toBe('out');
    expect(suggestOption('x', opts)).toBeUndefined();
    expect(suggestOption('frobnicate', opts)).toBeUndefined();
    expect(suggestOption('se', opts)).toBeUndefined();
  });
});
