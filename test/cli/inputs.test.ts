/**
 * Inputs a user gets wrong, through the CLI as a real process (test/prune/helpers/cli.js runs
 * bin/shortgpt-native.js's main from the sources): data files of the wrong kind, option typos,
 * layer counts the model does not have, GGUF, paths that do not exist, and models found through
 * a Hugging Face hub cache (built here from assets/stories260k: blobs, symlinked snapshots, refs).
 * Each case gets its own paths; every refusal must leave OUT unwritten.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { repoRoot } from '../helpers/paths';

const cliJs = path.join(repoRoot, 'test', 'prune', 'helpers', 'cli.js');
const model = path.join(repoRoot, 'assets', 'stories260k');
const story = path.join(repoRoot, 'assets', 'data', 'tinystories-valid.txt');

let tmp: string;
let caseNo = 0;
/** A fresh directory for one case. */
function caseDir(): string {
  const d = path.join(tmp, `case-${++caseNo}`);
  fs.mkdirSync(d);
  return d;
}

/** An environment with no Hugging Face cache settings of the machine's own, and HOME in tmp. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME', 'HF_HUB_OFFLINE']) delete env[k];
  return { ...env, HOME: path.join(tmp, 'home'), ...extra };
}

function cli(args: string[], opts: { env?: Record<string, string>; input?: Buffer | string } = {}): { status: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cliJs, ...args], { env: cleanEnv(opts.env), input: opts.input ?? '', encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** The first `bytes` of the bundled TinyStories text: enough for at least 16 windows of 256 tokens. */
function storyText(bytes: number): string {
  return fs.readFileSync(story, 'utf8').slice(0, bytes);
}

const ACCEPTED = /accepted: text \(\.txt, \.md.*\.jsonl.*\.json.*\.parquet.*\.bin with --token-dtype.*folder.*- for stdin/;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sgpt-inputs-'));
  fs.mkdirSync(path.join(tmp, 'home'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('data files of a kind that is not read', () => {
  it('--calib data.csv is refused, naming the accepted kinds, and nothing is written', () => {
    const d = caseDir();
    const csv = path.join(d, 'data.csv');
    fs.writeFileSync(csv, 'id,text\n1,Once upon a time there was a cat.\n');
    const out = path.join(d, 'out');
    const r = cli(['prune', model, '--calib', csv, '--remove', '1', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_DATA_FORMAT\].*data\.csv: '\.csv' files are not read as data; convert it to JSON Lines/);
    expect(r.err).toMatch(ACCEPTED);
    expect(r.out).toBe('');
    const e = cli(['prune', model, '--calib', story, '--eval', csv, '--remove', '1', '--out', out]);
    expect(e.status).toBe(1);
    expect(e.err).toMatch(/\[ERR_DATA_FORMAT\].*data\.csv: '\.csv' files are not read as data/);
    expect(fs.readdirSync(d)).toEqual(['data.csv']);
  });

  it('eval --data with a compressed file says to decompress it', () => {
    const d = caseDir();
    const gz = path.join(d, 'valid.txt.gz');
    fs.writeFileSync(gz, Buffer.from([0x1f, 0x8b, 8, 0]));
    const r = cli(['eval', model, '--data', gz]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_DATA_FORMAT\].*valid\.txt\.gz.*decompress it first/);
  });

  it('a binary file named .txt, and binary bytes on stdin, are refused as binary', () => {
    const d = caseDir();
    const bin = path.join(d, 'weights.txt');
    fs.writeFileSync(bin, Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(64), Buffer.from('text after')]));
    const r = cli(['score', model, '--calib', bin]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_DATA_BINARY\].*weights\.txt is binary, not text \(a NUL byte at offset 4\)/);
    expect(r.err).toMatch(ACCEPTED);
    const s = cli(['score', model, '--calib', '-'], { input: Buffer.from([0x4f, 0x6e, 0x00, 0x63, 0x65]) });
    expect(s.status).toBe(1);
    expect(s.err).toMatch(/\[ERR_DATA_BINARY\].*<stdin> is binary/);
  });

  it('a folder skips files that are not data with one note, and scores exactly as its data files alone', () => {
    const d = caseDir();
    const folder = path.join(d, 'corpus');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'stories.txt'), storyText(20000));
    fs.writeFileSync(path.join(folder, 'LICENSE'), 'MIT License\n');
    fs.writeFileSync(path.join(folder, 'notes.csv'), 'a,b\n1,2\n');
    fs.writeFileSync(path.join(folder, '.gitattributes'), '*.txt text\n');
    const r = cli(['score', model, '--calib', folder, '--json']);
    expect(r.status).toBe(0);
    expect(r.err).toContain(`folder ${folder}: skipped 2 files that are not data: LICENSE, notes.csv`);
    expect(r.err).not.toMatch(/gitattributes|warning/);
    const alone = cli(['score', model, '--calib', path.join(folder, 'stories.txt'), '--json']);
    expect(alone.status).toBe(0);
    const a = JSON.parse(r.out);
    expect(a.warnings).toEqual([]);
    expect(a.layers).toEqual(JSON.parse(alone.out).layers);
  });

  it('a file without an extension is read as text (e.g. process substitution)', () => {
    const d = caseDir();
    const plain = path.join(d, 'stories');
    fs.writeFileSync(plain, storyText(20000));
    fs.writeFileSync(`${plain}.txt`, storyText(20000));
    const r = cli(['score', model, '--calib', plain, '--json', '--quiet']);
    const t = cli(['score', model, '--calib', `${plain}.txt`, '--json', '--quiet']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out).layers).toEqual(JSON.parse(t.out).layers);
  });

  it('a folder with no data files names what it holds and what is accepted', () => {
    const d = caseDir();
    fs.writeFileSync(path.join(d, 'train.csv'), 'a\n');
    const r = cli(['score', model, '--calib', d]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_DATA_EMPTY\].*holds no \.txt.*1 other file, e\.g\. train\.csv/);
    expect(r.err).toMatch(ACCEPTED);
  });
});

describe('too little calibration data', () => {
  it('score warns on stderr and in its JSON when there are fewer than 16 windows', () => {
    const d = caseDir();
    const tiny = path.join(d, 'tiny.txt');
    fs.writeFileSync(tiny, 'Once upon a time there was a cat. The cat liked to play in the sun with a ball.\n');
    const r = cli(['score', model, '--calib', tiny, '--json']);
    expect(r.status).toBe(0);
    expect(r.err).toMatch(/warning: only 1 calibration window \(\d+ tokens\): with fewer than 16 windows the layer ranking is mostly noise/);
    expect(JSON.parse(r.out).warnings).toEqual([expect.stringMatching(/^only 1 calibration window/)]);
  });

  it('prune puts the warning in its report (--json, report.json, report.md); 16 windows give none', () => {
    const d = caseDir();
    const out = path.join(d, 'out');
    const r = cli(['prune', model, '--calib', story, '--samples', '15', '--remove', '1', '--out', out, '--json']);
    expect(r.status).toBe(0);
    expect(r.err).toMatch(/warning: only 15 calibration windows/);
    expect(JSON.parse(r.out).calibration.warnings).toEqual([expect.stringMatching(/^only 15 calibration windows/)]);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).calibration.warnings).toHaveLength(1);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/\*\*Warning:\*\* only 15 calibration windows/);
    const enough = cli(['prune', model, '--calib', story, '--samples', '16', '--remove', '1', '--dry-run', '--json']);
    expect(enough.status).toBe(0);
    expect(enough.err).not.toMatch(/warning/);
    expect(JSON.parse(enough.out).calibration.warnings).toEqual([]);
  });
});

describe('option typos and stray arguments', () => {
  it.each([
    [['prune', '<model>', '--remov', '2'], "prune: unknown option '--remov' (did you mean --remove?)"],
    [['prune', '<model>', '--remove-layer', '2'], "prune: unknown option '--remove-layer' (did you mean --remove-layers?)"],
    [['eval', '<model>', '--skip-layer', '1'], "eval: unknown option '--skip-layer' (did you mean --skip-layers?)"],
    [['score', '<model>', '--calbi', 'x.txt'], "score: unknown option '--calbi' (did you mean --calib?)"],
    [['inspect', '<model>', '--jsno'], "inspect: unknown option '--jsno' (did you mean --json?)"],
    [['score', '<model>', '--frobnicate'], "score: unknown option '--frobnicate'\n"],
    [['prune', '<model>', '-r', '2'], "prune: unknown option '-r'\n"],
    [['prune', '<model>', '--out'], 'prune: --out needs a value'],
    [['prune', '<model>', '--calib', '--remove', '2'], "prune: --calib needs a value, but is followed by '--remove'"],
    [['prune', '<model>', '--force=yes'], "prune: --force takes no value (got '--force=yes')"],
    [['prune', '<model>', 'extra', '--remove-layers', '1', '--out', 'o'], "prune: unexpected argument 'extra'"],
  ])('%j', (args, message) => {
    const r = cli(args.map((a) => (a === '<model>' ? model : a)));
    expect(r.status).toBe(2);
    expect(r.err).toContain(`shortgpt-native: ${message}`);
    expect(r.err).toMatch(/Run `shortgpt-native (prune|eval|score|inspect) --help` for usage\./);
    // Node's parseArgs wording (positional arguments, quoting) must not leak through.
    expect(r.err).not.toMatch(/positional|To specify|Did you forget/);
    expect(r.out).toBe('');
  });
});

describe('asking for layers the model does not have is a usage error (exit 2), nothing written', () => {
  it.each([
    ['--remove 9 of 5 layers', ['prune', model, '--calib', story, '--remove', '9'], /\[ERR_REMOVE_COUNT\].*cannot remove 9 layers: the model has 5/],
    ['--ratio that removes every layer', ['prune', model, '--calib', story, '--ratio', '0.95'], /\[ERR_REMOVE_COUNT\].*cannot remove 5 layers/],
    ['--remove-layers naming layer 7', ['prune', model, '--remove-layers', '3,7'], /layer 7 is out of range.*0\.\.4/],
    ['--remove-layers naming every layer', ['prune', model, '--remove-layers', '0-4'], /removing all 5 layers/],
  ])('%s', (_name, args, message) => {
    const d = caseDir();
    const r = cli([...args, '--out', path.join(d, 'out')]);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(message);
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('eval --skip-layers naming layer 9', () => {
    const r = cli(['eval', model, '--data', story, '--skip-layers', '9']);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/--skip-layers: layer 9 does not exist.*0\.\.4/);
  });
});

describe('MODEL that is not a safetensors checkpoint', () => {
  it('a .gguf file says how to convert it or prune it with llama-quantize', () => {
    const d = caseDir();
    const gguf = path.join(d, 'model-Q4_K_M.gguf');
    fs.writeFileSync(gguf, 'GGUF');
    const r = cli(['inspect', gguf]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_GGUF\].*model-Q4_K_M\.gguf is a GGUF file/);
    expect(r.err).toMatch(/convert the GGUF back to safetensors/);
    expect(r.err).toMatch(/--dry-run.*llama-quantize --prune-layers/);
  });

  it('a folder holding only a .gguf gets the same advice, not a hint about .bin files', () => {
    const d = caseDir();
    fs.copyFileSync(path.join(model, 'config.json'), path.join(d, 'config.json'));
    fs.writeFileSync(path.join(d, 'model.gguf'), 'GGUF');
    const r = cli(['prune', d, '--calib', story, '--remove', '1', '--out', path.join(tmp, `gguf-out-${caseNo}`)]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_GGUF\].*only GGUF weights \(model\.gguf\).*llama-quantize --prune-layers/);
    expect(r.err).not.toMatch(/convert \.bin/);
    expect(fs.existsSync(path.join(tmp, `gguf-out-${caseNo}`))).toBe(false);
  });

  it('a path that does not exist says what MODEL is expected to be', () => {
    const r = cli(['score', path.join(tmp, 'no-such-model'), '--calib', story]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/\[ERR_CHECKPOINT_DIR\].*no-such-model: does not exist\. MODEL is a checkpoint directory \(config\.json and \*\.safetensors\).*models--org--name.*hub id org\/name/);
  });

  it('config.json given instead of its directory names the directory', () => {
    const r = cli(['inspect', path.join(model, 'config.json')]);
    expect(r.status).toBe(1);
    expect(r.err).toContain(`not a directory; give the directory that holds it: ${model}`);
  });
});

describe('models in a Hugging Face hub cache (offline)', () => {
  const repoId = 'tiny-org/stories260k';
  const main = '1111111111111111111111111111111111111111';
  const v1 = '2222222222222222222222222222222222222222';
  let hfHome: string;
  let hub: string;
  let repo: string;

  /** A snapshot as huggingface_hub lays it out: every file a relative symlink to ../../blobs/<hash>. */
  function addSnapshot(src: string, commit: string): void {
    const snap = path.join(repo, 'snapshots', commit);
    fs.mkdirSync(snap, { recursive: true });
    for (const name of fs.readdirSync(src)) {
      const blob = `${commit.slice(0, 8)}-${name}`;
      fs.copyFileSync(path.join(src, name), path.join(repo, 'blobs', blob));
      fs.symlinkSync(path.join('..', '..', 'blobs', blob), path.join(snap, name));
    }
  }

  beforeAll(async () => {
    hfHome = path.join(tmp, 'hf-home');
    hub = path.join(hfHome, 'hub');
    repo = path.join(hub, 'models--tiny-org--stories260k');
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'refs'));
    addSnapshot(model, main);
    // Revision v1: the same model without layer 2, so each revision is recognisable by its layer count.
    const short = path.join(tmp, 'short-src');
    await rewriteCheckpoint(model, short, { removeLayers: [2] });
    addSnapshot(short, v1);
    fs.writeFileSync(path.join(repo, 'refs', 'main'), main);
    fs.writeFileSync(path.join(repo, 'refs', 'v1'), v1);
  });

  const layersOf = (r: { status: number; out: string; err: string }): number => {
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    return JSON.parse(r.out).layers;
  };

  it('a hub id resolves through HF_HUB_CACHE, and through HF_HOME/hub, to refs/main\'s snapshot', () => {
    const viaHubCache = cli(['inspect', repoId, '--json'], { env: { HF_HUB_CACHE: hub } });
    expect(layersOf(viaHubCache)).toBe(5);
    expect(JSON.parse(viaHubCache.out).dir).toBe(path.join(repo, 'snapshots', main));
    expect(layersOf(cli(['inspect', repoId, '--json'], { env: { HF_HOME: hfHome } }))).toBe(5);
    // HF_HUB_CACHE wins over HF_HOME, as in huggingface_hub.
    expect(layersOf(cli(['inspect', repoId, '--json'], { env: { HF_HUB_CACHE: hub, HF_HOME: path.join(tmp, 'elsewhere') } }))).toBe(5);
  });

  it('the default cache is ~/.cache/huggingface/hub', () => {
    const home = caseDir();
    fs.mkdirSync(path.join(home, '.cache', 'huggingface'), { recursive: true });
    fs.symlinkSync(hub, path.join(home, '.cache', 'huggingface', 'hub'));
    expect(layersOf(cli(['inspect', repoId, '--json'], { env: { HOME: home } }))).toBe(5);
  });

  it('--revision picks a ref or a commit hash; a models--org--name folder works as MODEL', () => {
    const env = { HF_HOME: hfHome };
    expect(layersOf(cli(['inspect', repoId, '--revision', 'v1', '--json'], { env }))).toBe(4);
    expect(layersOf(cli(['inspect', repoId, '--revision', v1, '--json'], { env }))).toBe(4);
    expect(layersOf(cli(['inspect', repo, '--json']))).toBe(5);
    expect(layersOf(cli(['inspect', repo, '--revision', 'v1', '--json']))).toBe(4);
  });

  it('scores read through the snapshot\'s symlinks equal the plain directory\'s', () => {
    const viaCache = cli(['score', repoId, '--calib', story, '--samples', '16', '--json', '--quiet'], { env: { HF_HOME: hfHome } });
    const plain = cli(['score', model, '--calib', story, '--samples', '16', '--json', '--quiet']);
    expect(viaCache.status).toBe(0);
    expect(JSON.parse(viaCache.out).layers).toEqual(JSON.parse(plain.out).layers);
  });

  it('prune from a hub id writes regular files, byte-identical to pruning the directory', () => {
    const d = caseDir();
    const viaCache = path.join(d, 'via-cache');
    const plain = path.join(d, 'plain');
    expect(cli(['prune', repoId, '--remove-layers', '1', '--out', viaCache], { env: { HF_HOME: hfHome } }).status).toBe(0);
    expect(cli(['prune', model, '--remove-layers', '1', '--out', plain]).status).toBe(0);
    const names = fs.readdirSync(viaCache).sort();
    expect(names).toEqual(fs.readdirSync(plain).sort());
    const snapshot = path.join(repo, 'snapshots', main);
    for (const name of names) {
      expect(fs.lstatSync(path.join(viaCache, name)).isFile()).toBe(true);
      // The model card names the source as a hub id when it can; it is the one file meant to differ.
      if (name === 'README.md') continue;
      // Files that record the source (shortgpt.json, ...) name the snapshot instead of the directory.
      const stamp = (t: string): string => t.replace(/"createdAt": "[^"]*"/g, '"createdAt": "T"');
      const a = fs.readFileSync(path.join(viaCache, name), 'latin1').split(snapshot).join(model).split(viaCache).join(plain);
      expect(stamp(a)).toBe(stamp(fs.readFileSync(path.join(plain, name), 'latin1')));
    }
    expect(fs.lstatSync(path.join(repo, 'snapshots', main, 'config.json')).isSymbolicLink()).toBe(true);
  });

  it('a model or revision not in the cache says how to download it, and nothing is downloaded', () => {
    const notCached = cli(['inspect', 'other-org/other-model'], { env: { HF_HOME: hfHome } });
    expect(notCached.status).toBe(1);
    expect(notCached.err).toMatch(/\[ERR_MODEL_NOT_CACHED\].*other-org\/other-model.*has no models--other-org--other-model.*never downloads.*`hf download other-org\/other-model`/);
    const badRev = cli(['inspect', repoId, '--revision', 'v9'], { env: { HF_HOME: hfHome } });
    expect(badRev.status).toBe(1);
    expect(badRev.err).toMatch(/revision 'v9' of tiny-org\/stories260k is not in the local cache.*refs: main, v1.*`hf download tiny-org\/stories260k --revision v9`/);
    expect(fs.readdirSync(hub)).toEqual(['models--tiny-org--stories260k']);
  });

  it('--revision with a plain directory, or a revision that climbs out of refs/, is a usage error', () => {
    const plain = cli(['inspect', model, '--revision', 'main']);
    expect(plain.status).toBe(2);
    expect(plain.err).toMatch(/--revision applies to a hub id/);
    const climb = cli(['inspect', repoId, '--revision', '../../x'], { env: { HF_HOME: hfHome } });
    expect(climb.status).toBe(2);
    expect(climb.err).toMatch(/--revision '\.\.\/\.\.\/x' is not a branch, tag or commit hash/);
  });
});
