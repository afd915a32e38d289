import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCalibrationDocuments, tokenizeDocuments } from '../../lib/data/sources';
import { loadTokenizer } from '../../lib/data/tokenizer';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { tmpDir } from './fixtures';
import { loadGoldenTokens } from '../helpers/golden';

const validTxt = tinyStoriesText;

describe('loadTokenizer on stories260k', () => {
  it('reads the special-token policy from tokenizer_config.json', async () => {
    const tok = await loadTokenizer(stories260kDir);
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.addBos).toBe(true);
    expect(tok.addEos).toBe(false);
    expect(tok.encode('')).toEqual([1]);
  });

  it('reproduces the golden token windows exactly', async () => {
    // test/fixtures/golden/README.md: stories from tinystories-valid.txt, BOS added, each
    // truncated to 256. The file's first story is a truncated fragment (" Spot. Spot saw ...");
    // the golden set starts at the first complete story, so it is documents 1..24. (The tokens
    // were also identical to ../shared/golden's, made by another tool, when generated.)
    const golden = loadGoldenTokens();
    const tok = await loadTokenizer(stories260kDir);
    const docs = await tokenizeDocuments(await readCalibrationDocuments([validTxt]), { vocabSize: 512, tokenizer: tok });
    expect(docs).toHaveLength(189);
    const ours = docs.slice(1, 1 + golden.length).map((d) => d.ids.slice(0, 256));
    expect(ours).toEqual(golden);
    expect(ours.flat()).toHaveLength(6110);
  });

  it('decodes back to the text (after the BOS piece)', async () => {
    const tok = await loadTokenizer(stories260kDir);
    const text = 'Once upon a time, there was a little girl named Lily.\nShe said "hi".';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(`<s> ${text}`);
    expect(tok.decode(ids.slice(1))).toBe(text);
  });

  it('honours add_bos_token=false and add_eos_token=true', async () => {
    const dir = tmpDir();
    for (const f of ['tokenizer.json', 'special_tokens_map.json', 'config.json']) fs.copyFileSync(path.join(stories260kDir, f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(stories260kDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, add_bos_token: false, add_eos_token: true }));
    const plain = await loadTokenizer(stories260kDir);
    const tok = await loadTokenizer(dir);
    expect(tok.addBos).toBe(false);
    expect(tok.addEos).toBe(true);
    expect(tok.encode('Hello there')).toEqual([...plain.encode('Hello there').slice(1), 2]);
  });

  it('without tokenizer_config.json follows the tokenizer.json post-processor', async () => {
    const dir = tmpDir();
    fs.copyFileSync(path.join(stories260kDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const tok = await loadTokenizer(dir);
    expect(tok.addBos).toBe(true);
    expect(tok.encode('Hi')).toEqual((await loadTokenizer(stories260kDir)).encode('Hi'));
  });

  it('a model without tokenizer.json is ERR_NO_TOKENIZER naming the directory', async () => {
    const dir = tmpDir();
    fs.copyFileSync(path.join(stories260kDir, 'config.json'), path.join(dir, 'config.json'));
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: 'ERR_NO_TOKENIZER', message: expect.stringContaining(dir) });
    // Text data with that model fails the same way; pre-tokenized data does not need it.
    const data = path.join(dir, 'a.txt');
    fs.writeFileSync(data, 'Once upon a time');
    const docs = await readCalibrationDocuments([data]);
    await expect(tokenizeDocuments(docs, { vocabSize: 512, modelDir: dir })).rejects.toMatchObject({ code: 'ERR_NO_TOKENIZER' });
    await expect(tokenizeDocuments([{ kind: 'tokens', ids: [1, 5], origin: 'x' }], { vocabSize: 512, modelDir: dir })).resolves.toHaveLength(1);
  });
});
