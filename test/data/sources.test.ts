import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { loadCalibrationDocuments, readCalibrationDocuments, tokenizeDocuments } from '../../lib/data/sources';
import { splitTextDocuments } from '../../lib/data/textFile';
import { loadTokenizer } from '../../lib/data/tokenizer';
import { repoRoot, stories260kDir } from '../helpers/paths';
import { tmpDir, writeParquet, writeTokenBin } from './fixtures';

// For the unreadable-file test's child process (see privilegeDropper at the end).
const sourcesModule = path.join(repoRoot, 'lib', 'data', 'sources.ts');
const tsRequire = path.join(repoRoot, 'test', 'prune', 'helpers', 'tsRequire.js');

const texts = (docs: { kind: string; text?: string }[]) => docs.map((d) => d.text);

describe('text files', () => {
  it('a plain file is one document; its final line break is dropped, inner ones kept', () => {
    expect(texts(splitTextDocuments('Line one.\nLine two.\n', 'a.txt'))).toEqual(['Line one.\nLine two.']);
    expect(texts(splitTextDocuments(' leading space kept', 'a.txt'))).toEqual([' leading space kept']);
  });

  it('<|endoftext|> lines split documents; empty pieces are skipped; CRLF handled', () => {
    const t = 'First story.\nMore.\n<|endoftext|>\nSecond.\n  <|endoftext|>  \n\n<|endoftext|>\nThird <|endoftext|> inline.\n<|endoftext|>\n';
    const docs = splitTextDocuments(t, 'f.txt');
    expect(texts(docs)).toEqual(['First story.\nMore.', 'Second.', 'Third <|endoftext|> inline.']);
    expect(docs.map((d) => d.origin)).toEqual(['f.txt:1', 'f.txt:4', 'f.txt:8']);
    expect(texts(splitTextDocuments('A\r\nB\r\n<|endoftext|>\r\nC\r\n', 'w.txt'))).toEqual(['A\r\nB', 'C']);
  });

  it('a folder is read recursively in sorted order, by extension, skipping hidden files', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'b'));
    fs.mkdirSync(path.join(dir, '.git'));
    fs.writeFileSync(path.join(dir, 'b', 'z.md'), 'zed');
    fs.writeFileSync(path.join(dir, 'a.txt'), 'alpha');
    fs.writeFileSync(path.join(dir, 'c.jsonl'), '{"text":"gamma"}\n');
    fs.writeFileSync(path.join(dir, 'skip.csv'), 'x,y');
    fs.writeFileSync(path.join(dir, '.hidden.txt'), 'no');
    fs.writeFileSync(path.join(dir, '.git', 'x.txt'), 'no');
    fs.writeFileSync(path.join(dir, 'd.bin'), Buffer.from([1, 0]));
    expect(texts(await readCalibrationDocuments([dir]))).toEqual(['alpha', 'zed', 'gamma']);
  });

  it('stdin (-) is read as text', async () => {
    const docs = await readCalibrationDocuments(['-'], { stdin: Readable.from([Buffer.from('one\n<|endoftext|>\ntwo\n')]) });
    expect(texts(docs)).toEqual(['one', 'two']);
    expect(docs[0].origin).toBe('<stdin>:1');
  });
});

describe('JSON and JSONL', () => {
  it('JSONL with the default and a chosen text field, ids records, blank lines', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'd.jsonl');
    fs.writeFileSync(f, '{"text":"hello","id":1}\n\n{"text":"world"}\n[1,5,6]\n"bare string"\n');
    const docs = await readCalibrationDocuments([f]);
    expect(docs).toEqual([
      { kind: 'text', text: 'hello', origin: `${f}:1` },
      { kind: 'text', text: 'world', origin: `${f}:3` },
      { kind: 'tokens', ids: [1, 5, 6], origin: `${f}:4` },
      { kind: 'text', text: 'bare string', origin: `${f}:5` },
    ]);
    const g = path.join(dir, 'e.jsonl');
    fs.writeFileSync(g, '{"content":"abc"}\n{"content":[1,2,3]}\n');
    expect((await readCalibrationDocuments([g], { textField: 'content' })).map((d) => d.kind)).toEqual(['text', 'tokens']);
  });

  it('a JSONL record without the field names file, line and field', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'd.jsonl');
    fs.writeFileSync(f, '{"text":"ok"}\n{"body":"no text here"}\n');
    await expect(readCalibrationDocuments([f])).rejects.toMatchObject({
      code: 'ERR_DATA_FIELD',
      message: expect.stringMatching(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: record has no field 'text'.*body`)),
    });
  });

  it('JSON: array of objects, of strings, of id arrays, or one id array', async () => {
    const dir = tmpDir();
    const write = (name: string, v: unknown) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, JSON.stringify(v));
      return f;
    };
    expect(texts(await readCalibrationDocuments([write('o.json', [{ text: 'a' }, { text: 'b' }])]))).toEqual(['a', 'b']);
    expect(texts(await readCalibrationDocuments([write('s.json', ['x', '', 'y'])]))).toEqual(['x', 'y']);
    expect(await readCalibrationDocuments([write('n.json', [[1, 2], [1, 3, 4]])])).toMatchObject([{ ids: [1, 2] }, { ids: [1, 3, 4] }]);
    expect(await readCalibrationDocuments([write('one.json', [1, 2, 3])])).toMatchObject([{ kind: 'tokens', ids: [1, 2, 3] }]);
    const bad = write('bad.json', [{ text: 'a' }, { text: 7 }]);
    await expect(readCalibrationDocuments([bad])).rejects.toMatchObject({ code: 'ERR_DATA_FIELD', message: expect.stringContaining(`${bad}[1]: field 'text' is a number`) });
    const obj = write('obj.json', { text: 'a' });
    await expect(readCalibrationDocuments([obj])).rejects.toMatchObject({ code: 'ERR_DATA_CORRUPT', message: expect.stringContaining(obj) });
  });

  it('corrupt JSON and JSONL name the file (and line)', async () => {
    const dir = tmpDir();
    const j = path.join(dir, 'c.json');
    fs.writeFileSync(j, '[{"text": "a"');
    await expect(readCalibrationDocuments([j])).rejects.toMatchObject({ code: 'ERR_DATA_CORRUPT', message: expect.stringContaining(j) });
    const l = path.join(dir, 'c.jsonl');
    fs.writeFileSync(l, '{"text":"a"}\n{"text": oops}\n');
    await expect(readCalibrationDocuments([l])).rejects.toMatchObject({ code: 'ERR_DATA_CORRUPT', message: expect.stringContaining(`${l}:2`) });
  });
});

describe('Parquet', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'train-00000.parquet');
  beforeAll(() => writeParquet(f, { text: ['Once upon a time', '', 'The end.'], title: ['a', 'b', 'c'] }));

  it('reads the text column, one document per row, empty rows skipped', async () => {
    const docs = await readCalibrationDocuments([f]);
    expect(docs).toEqual([
      { kind: 'text', text: 'Once upon a time', origin: `${f}#row 0` },
      { kind: 'text', text: 'The end.', origin: `${f}#row 2` },
    ]);
    expect(texts(await readCalibrationDocuments([f], { textField: 'title' }))).toEqual(['a', 'b', 'c']);
  });

  it('a missing column names the file and the columns there are', async () => {
    await expect(readCalibrationDocuments([f], { textField: 'body' })).rejects.toMatchObject({
      code: 'ERR_DATA_FIELD',
      message: expect.stringMatching(/no column 'body' \(columns: text, title\)/),
    });
  });

  it('a file that is not Parquet is ERR_DATA_CORRUPT naming it', async () => {
    const bad = path.join(dir, 'bad.parquet');
    fs.writeFileSync(bad, 'this is not parquet at all');
    await expect(readCalibrationDocuments([bad])).rejects.toMatchObject({ code: 'ERR_DATA_CORRUPT', message: expect.stringContaining(bad) });
  });
});

describe('raw token streams', () => {
  it.each(['uint16', 'uint32'] as const)('%s .bin splits before every BOS', async (dtype) => {
    const dir = tmpDir();
    const f = path.join(dir, 'shard.bin');
    const big = dtype === 'uint32' ? 70000 : 300;
    writeTokenBin(f, [1, 10, 11, 1, 12, big, 13, 1, 14], dtype);
    const docs = await readCalibrationDocuments([f], { tokenDtype: dtype, bosTokenId: 1 });
    expect(docs.map((d) => (d.kind === 'tokens' ? d.ids : null))).toEqual([[1, 10, 11], [1, 12, big, 13], [1, 14]]);
    expect(docs[1].origin).toBe(`${f}@token 3`);
    // The wrong width is caught when the byte count cannot be whole tokens.
    if (dtype === 'uint16') {
      writeTokenBin(f, [1, 2, 3], 'uint16');
      await expect(readCalibrationDocuments([f], { tokenDtype: 'uint32' })).rejects.toMatchObject({ code: 'ERR_DATA_CORRUPT', message: expect.stringContaining(f) });
    }
  });

  it('a .bin without --token-dtype is an error naming it', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'x.bin');
    writeTokenBin(f, [1, 2], 'uint16');
    await expect(readCalibrationDocuments([f])).rejects.toMatchObject({ code: 'ERR_DATA_FORMAT', message: expect.stringContaining(f) });
  });

  it('ids outside the vocabulary name the document, position and vocab size', async () => {
    const docs = [{ kind: 'tokens' as const, ids: [1, 5, 600], origin: 'shard.bin@token 0' }];
    await expect(tokenizeDocuments(docs, { vocabSize: 512 })).rejects.toMatchObject({
      code: 'ERR_DATA_TOKEN_ID',
      message: 'shard.bin@token 0: token 2 is 600, outside the model\'s vocabulary [0, 512)',
    });
  });
});

describe('errors for missing, unreadable and empty data', () => {
  it('a missing file is ERR_DATA_MISSING naming it', async () => {
    const p = path.join(tmpDir(), 'nope.txt');
    await expect(readCalibrationDocuments([p])).rejects.toMatchObject({ code: 'ERR_DATA_MISSING', message: expect.stringContaining(p) });
  });

  it('a binary file read as text is ERR_DATA_BINARY naming it', async () => {
    const p = path.join(tmpDir(), 'blob.txt');
    fs.writeFileSync(p, Buffer.from([0xff, 0xfe, 0x00, 0xc3]));
    await expect(readCalibrationDocuments([p])).rejects.toMatchObject({ code: 'ERR_DATA_BINARY', message: expect.stringContaining(p) });
  });

  // Root reads a mode-0 file anyway, so as root (as CI runs) the read happens in a child that
  // setpriv/runuser drops to nobody; a readable file beside it shows that child can read at all.
  const asRoot = process.getuid?.() === 0;
  const dropPrivileges = asRoot ? privilegeDropper() : null;
  const unreadableName = 'an unreadable file is ERR_DATA_UNREADABLE naming it';
  (asRoot && !dropPrivileges ? it.skip : it)(asRoot && !dropPrivileges ? `${unreadableName} (SKIPPED: root, and no setpriv/runuser child as nobody can load the repository)` : unreadableName, async () => {
    const dir = tmpDir();
    const p = path.join(dir, 'locked.txt');
    const readable = path.join(dir, 'open.txt');
    fs.writeFileSync(p, 'x');
    fs.writeFileSync(readable, 'y');
    fs.chmodSync(p, 0);
    if (!asRoot) {
      await expect(readCalibrationDocuments([p])).rejects.toMatchObject({ code: 'ERR_DATA_UNREADABLE', message: expect.stringContaining(p) });
      return;
    }
    fs.chmodSync(dir, 0o755); // mkdtemp's 0700 would stop nobody before the file's own mode does
    expect(readAsNobody(dropPrivileges!, readable)).toEqual({ documents: 1 });
    expect(readAsNobody(dropPrivileges!, p)).toEqual({ code: 'ERR_DATA_UNREADABLE', message: expect.stringContaining(p) });
  });

  it('empty files and empty folders are ERR_DATA_EMPTY', async () => {
    const dir = tmpDir();
    await expect(readCalibrationDocuments([dir])).rejects.toMatchObject({ code: 'ERR_DATA_EMPTY', message: expect.stringContaining(dir) });
    const f = path.join(dir, 'blank.txt');
    fs.writeFileSync(f, '\n  \n<|endoftext|>\n');
    await expect(loadCalibrationDocuments([f], { vocabSize: 512, modelDir: stories260kDir })).rejects.toMatchObject({
      code: 'ERR_DATA_EMPTY',
      message: expect.stringContaining(f),
    });
  });

  it('text and pre-tokenized sources mix, tokenized with the model tokenizer', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'a.txt'), 'Once upon a time');
    fs.writeFileSync(path.join(dir, 'b.json'), '[[1, 7, 8]]');
    const docs = await loadCalibrationDocuments([dir], { vocabSize: 512, modelDir: stories260kDir });
    const tok = await loadTokenizer(stories260kDir);
    expect(docs.map((d) => d.ids)).toEqual([tok.encode('Once upon a time'), [1, 7, 8]]);
  });
});

/**
 * A command prefix that runs the rest as user nobody (uid 65534), or null when none works here:
 * no setpriv/runuser, or a checkout nobody cannot read (e.g. under a 0700 home).
 */
function privilegeDropper(): string[] | null {
  for (const cmd of [['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'], ['runuser', '-u', 'nobody', '--']]) {
    const probe = spawnSync(cmd[0]!, [...cmd.slice(1), process.execPath, '-r', tsRequire, '-e', `require(${JSON.stringify(sourcesModule)})`], { timeout: 60_000 });
    if (probe.status === 0) return cmd;
  }
  return null;
}

/** readCalibrationDocuments([file]) in a child node running as nobody: what it returned or threw. */
function readAsNobody(dropper: string[], file: string): unknown {
  const script = `require(${JSON.stringify(sourcesModule)}).readCalibrationDocuments([process.argv[1]])
    .then((d) => console.log(JSON.stringify({ documents: d.length })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`;
  const r = spawnSync(dropper[0]!, [...dropper.slice(1), process.execPath, '-r', tsRequire, '-e', script, file], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child as nobody failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as unknown;
}
