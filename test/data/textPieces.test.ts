/**
 * Long documents are tokenized in pieces (lib/data/textPieces.ts) and plain text is split into
 * documents as it streams in (lib/data/textStream.ts). Both are checked here against the
 * whole-text reference: encoding a whole document at once, and splitTextDocuments on a whole file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { loadCalibration, readCalibrationDocuments, tokenizeDocuments } from '../../lib/data/sources';
import { splitTextDocuments } from '../../lib/data/textFile';
import { splitLongText } from '../../lib/data/textPieces';
import { TextDocumentSplitter } from '../../lib/data/textStream';
import { loadTokenizer, type Tokenizer } from '../../lib/data/tokenizer';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';

const story = fs.readFileSync(tinyStoriesText, 'utf8');
let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(stories260kDir);
});

function piecewise(text: string, pieceChars: number): { ids: number[]; cuts: string[] } {
  const ids: number[] = [];
  const cuts: string[] = [];
  for (const p of splitLongText(text, pieceChars)) {
    cuts.push(p.cut);
    ids.push(...tok.encodePiece!(p));
  }
  return { ids, cuts };
}

describe('a long document encoded in pieces', () => {
  // 40 KB of stories as one document: cut every ~0.5-1 K characters, ~50 cuts.
  const oneDocument = story.replace(/<\|endoftext\|>\n/g, '').slice(0, 40000);

  it('gives exactly the ids of the whole document (pieces cut at line breaks)', () => {
    const whole = tok.encode(oneDocument);
    const { ids, cuts } = piecewise(oneDocument, 1024);
    expect(cuts.filter((c) => c === 'break').length).toBeGreaterThan(30);
    expect(ids).toEqual(whole);
  });

  it('gives exactly the ids of the whole document (one line: pieces cut at spaces)', () => {
    const oneLine = oneDocument.replace(/\n/g, ' ');
    const whole = tok.encode(oneLine);
    const { ids, cuts } = piecewise(oneLine, 1024);
    expect(cuts.filter((c) => c === 'space').length).toBeGreaterThan(30);
    expect(ids).toEqual(whole);
  });

  it('puts BOS on the first piece only, and cuts hard (never inside a surrogate pair) only without whitespace', () => {
    const text = '😀'.repeat(3000);
    const pieces = [...splitLongText(text, 1000)];
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    expect(pieces.slice(1).every((p) => p.cut === 'hard' && !/^[\uDC00-\uDFFF]/.test(p.text))).toBe(true);
    const { ids } = piecewise(oneDocument.slice(0, 8000), 1024);
    expect(ids.filter((id) => id === tok.bosTokenId)).toHaveLength(1);
    expect(ids[0]).toBe(tok.bosTokenId);
  });
});

describe('plain text split as it streams in', () => {
  const cases: Record<string, string> = {
    stories: story,
    'stories, no final newline': story.replace(/\n+$/, ''),
    'separator at the end, no newline': 'a\nb\n<|endoftext|>',
    crlf: 'A\r\nB\r\n<|endoftext|>\r\nC\r\n',
    'separators and blanks': 'First.\nMore.\n<|endoftext|>\nSecond.\n  <|endoftext|>  \n\n<|endoftext|>\nThird <|endoftext|> inline.\n<|endoftext|>\n',
    'one long document': story.replace(/<\|endoftext\|>\n/g, ''),
    'two final newlines': 'x\ny\n\n',
    empty: '',
  };
  for (const [name, text] of Object.entries(cases)) {
    it(`gives the documents of splitTextDocuments: ${name}`, () => {
      const expected = splitTextDocuments(text, 'f').map((d) => ({ text: (d as { text: string }).text, origin: d.origin }));
      for (const chunk of [7, 1000, 1 << 20]) {
        const splitter = new TextDocumentSplitter('f', 512);
        const units = [];
        for (let i = 0; i < text.length; i += chunk) units.push(...splitter.push(text.slice(i, i + chunk)));
        units.push(...splitter.end());
        const docs: { text: string; origin: string }[] = [];
        for (const u of units) {
          if (u.first) docs.push({ text: '', origin: u.origin });
          docs[docs.length - 1].text += u.text;
        }
        expect(docs).toEqual(expected);
        // Every document's pieces are bounded: never more than about two pieces are held.
        expect(Math.max(0, ...units.map((u) => u.text.length))).toBeLessThanOrEqual(3 * 512);
      }
    });
  }
});

describe('loadCalibration', () => {
  const sample = story.slice(0, 30000);
  it('streams the same ids as reading everything and tokenizing document by document', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sgn-pieces-')), 'sample.txt');
    fs.writeFileSync(file, sample);
    const expected = await tokenizeDocuments(await readCalibrationDocuments([file]), { vocabSize: 512, tokenizer: tok });
    const loaded = await loadCalibration([file], { vocabSize: 512, tokenizer: tok });
    expect(loaded.limitReached).toBe(false);
    expect(loaded.documents).toEqual(expected);
  });

  it('stops at maxTokens, cutting the last document there, and says so', async () => {
    const stdin = () => Readable.from([Buffer.from(sample.slice(0, 10000)), Buffer.from(sample.slice(10000))]);
    const loaded = await loadCalibration(['-'], { vocabSize: 512, tokenizer: tok, maxTokens: 1000, stdin: stdin() });
    expect(loaded.limitReached).toBe(true);
    expect(loaded.documents.reduce((n, d) => n + d.ids.length, 0)).toBe(1000);
    const exact = await loadCalibration(['-'], { vocabSize: 512, tokenizer: tok, stdin: stdin() });
    const total = exact.documents.reduce((n, d) => n + d.ids.length, 0);
    const atTotal = await loadCalibration(['-'], { vocabSize: 512, tokenizer: tok, maxTokens: total, stdin: stdin() });
    expect(atTotal.limitReached).toBe(false);
  });
});
