/**
 * What `prune` copies from a hostile model folder: only regular files and symlinks to regular
 * files inside the folder (inside `models--org--name` for a Hugging Face cache snapshot), every
 * other entry skipped and named on stderr and in the result, no directory cycle walked. And
 * config.json comes out byte for byte as it went in, but for the fields the cut changes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';
import { createHash } from 'node:crypto';
import { tempRoot } from '../prune/helpers/rawCheckpoint';

let root: string;
beforeAll(() => {
  root = tempRoot('sgpt-links-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Every entry under `dir` with its kind: the output must hold plain files and folders only. */
function entries(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.push(`${r}/`);
        walk(path.join(d, e.name), r);
      } else out.push(e.isFile() ? r : `${r} (not a file)`);
    }
  };
  walk(dir, '');
  return out;
}

/** The folder as it is, links and FIFOs included (never followed or opened), to prove it unchanged. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${p} -> ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${p}/ ${st.mtimeMs}`);
        walk(p);
      } else if (st.isFile()) out.push(`${p} ${st.mtimeMs} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
      else out.push(`${p} mode ${st.mode} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out;
}

async function prune(model: string, out: string): Promise<{ code: number; out: string; err: string; json: { copiedFiles: string[]; skippedFiles: Array<{ path: string; reason: string }> } }> {
  const io = capture();
  const code = await main(['prune', model, '--remove-layers', '1', '--out', out, '--json'], io);
  return { code, out: io.out(), err: io.err(), json: code === 0 ? JSON.parse(io.out()) : undefined };
}

describe('prune copies only regular files from the model folder', () => {
  it('skips directory links (a self-link and a link to the parent: no cycle walked), links out of the folder, FIFOs and dangling links, and names each', async () => {
    const model = path.join(root, 'model');
    fs.cpSync(stories260kDir, model, { recursive: true });
    const secret = path.join(root, 'secret.txt');
    fs.writeFileSync(secret, 'not part of the model\n');
    fs.mkdirSync(path.join(model, 'sub'));
    fs.writeFileSync(path.join(model, 'sub', 'chat_template.jinja'), '{{ messages }}\n');
    fs.symlinkSync('.', path.join(model, 'loop'));
    fs.symlinkSync('..', path.join(model, 'up'));
    fs.symlinkSync('..', path.join(model, 'sub', 'back'));
    fs.symlinkSync(secret, path.join(model, 'secret.txt'));
    fs.symlinkSync('/etc/passwd', path.join(model, 'passwd'));
    fs.symlinkSync('missing.json', path.join(model, 'dangling.json'));
    fs.symlinkSync('tokenizer.json', path.join(model, 'tokenizer_copy.json'));
    execFileSync('mkfifo', [path.join(model, 'pipe')]);
    const before = snapshot(model);
    const out = path.join(root, 'out');
    const t0 = Date.now();
    const r = await prune(model, out);
    expect(Date.now() - t0).toBeLessThan(20000);
    expect(r.code).toBe(0);
    expect(entries(out)).toEqual([
      'LICENSE', 'README.md', 'config.json', 'generation_config.json', 'mergekit.yaml', 'model.safetensors', 'shortgpt.json',
      'special_tokens_map.json', 'sub/', 'sub/chat_template.jinja', 'tokenizer.json', 'tokenizer_config.json', 'tokenizer_copy.json',
    ]);
    // A link to a file inside the folder is copied as the file's content.
    expect(fs.readFileSync(path.join(out, 'tokenizer_copy.json'))).toEqual(fs.readFileSync(path.join(model, 'tokenizer.json')));
    const skipped = Object.fromEntries(r.json.skippedFiles.map((s) => [s.path, s.reason]));
    expect(skipped).toEqual({
      'dangling.json': 'dangling symlink',
      loop: `symlink to a directory (${fs.realpathSync(model)}); symlinked directories are not followed`,
      passwd: `symlink to /etc/passwd, outside the model folder ${fs.realpathSync(model)}`,
      pipe: 'a FIFO (named pipe), not a regular file',
      'secret.txt': `symlink to ${fs.realpathSync(secret)}, outside the model folder ${fs.realpathSync(model)}`,
      'sub/back': `symlink to a directory (${fs.realpathSync(model)}); symlinked directories are not followed`,
      up: `symlink to a directory (${fs.realpathSync(root)}); symlinked directories are not followed`,
    });
    // Each one named on stderr as it is decided, and recorded in OUT's shortgpt.json.
    for (const p of Object.keys(skipped)) expect(r.err).toContain(`${path.join(model, p)}: not copied: `);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8')).skippedFiles).toEqual(r.json.skippedFiles);
    expect(snapshot(model)).toEqual(before);
  });

  it('copies a Hugging Face cache snapshot, whose files are links into ../../blobs, as plain files', async () => {
    const repo = path.join(root, 'hub', 'models--org--tiny');
    const commit = 'a'.repeat(40);
    const snap = path.join(repo, 'snapshots', commit);
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'refs'));
    fs.mkdirSync(path.join(snap, 'nested'), { recursive: true });
    fs.writeFileSync(path.join(repo, 'refs', 'main'), commit);
    const names = fs.readdirSync(stories260kDir);
    for (const [i, name] of names.entries()) {
      const blob = `blob${i}`;
      fs.copyFileSync(path.join(stories260kDir, name), path.join(repo, 'blobs', blob));
      fs.symlinkSync(`../../blobs/${blob}`, path.join(snap, name));
    }
    fs.writeFileSync(path.join(repo, 'blobs', 'nestedblob'), 'nested\n');
    fs.symlinkSync('../../../blobs/nestedblob', path.join(snap, 'nested', 'extra.txt'));
    // A link out of the cache repo is still refused.
    fs.writeFileSync(path.join(root, 'hub', 'outside.txt'), 'x');
    fs.symlinkSync('../../../outside.txt', path.join(snap, 'outside.txt'));
    const out = path.join(root, 'hub-out');
    const r = await prune(snap, out);
    expect(r.code).toBe(0);
    expect(r.json.copiedFiles).toEqual(['LICENSE', 'generation_config.json', 'nested/extra.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(r.json.skippedFiles.map((s) => s.path)).toEqual(['outside.txt']);
    expect(entries(out).filter((e) => e.includes('not a file'))).toEqual([]);
    expect(fs.readFileSync(path.join(out, 'tokenizer.json'))).toEqual(fs.readFileSync(path.join(stories260kDir, 'tokenizer.json')));
  });
});

describe('config.json round-trips', () => {
  it('keeps every byte but num_hidden_layers, a __proto__ key and odd spellings included', async () => {
    const model = path.join(root, 'proto');
    fs.cpSync(stories260kDir, model, { recursive: true });
    const original = fs.readFileSync(path.join(model, 'config.json'), 'utf8');
    const text = original.replace('{', '{\n  "__proto__": {"polluted": true, "x": 1e-05},\n  "nested": {"__proto__": [1, 2], "rope": 10000.0},\n  "constructor":   "keep my spacing",');
    fs.writeFileSync(path.join(model, 'config.json'), text);
    const out = path.join(root, 'proto-out');
    const r = await prune(model, out);
    expect(r.code).toBe(0);
    const written = fs.readFileSync(path.join(out, 'config.json'), 'utf8');
    expect(written).toBe(text.replace(/"num_hidden_layers": 5/, '"num_hidden_layers": 4'));
    expect(written).not.toBe(text);
  });
});
