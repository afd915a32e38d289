import { batchWindows } from '../../lib/data/batches';
import { loadCalibrationDocuments } from '../../lib/data/sources';
import { cutWindows, cutWindowsOrFail, describeCalibration, sampleIndices, type TokenWindow } from '../../lib/data/windows';
import { sherlockText, stories260kDir, tinyStoriesText } from '../helpers/paths';

const doc = (n: number, base = 0) => ({ ids: Array.from({ length: n }, (_, i) => base + i) });
const arr = (w: TokenWindow) => Array.from(w.ids);

describe('cutWindows', () => {
  it('stride = seqLen by default; a short tail of >= 2 tokens is kept, a 1-token tail dropped', () => {
    const { windows, summary } = cutWindows([doc(10), doc(9, 100)], { seqLen: 4 });
    expect(windows.map(arr)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [100, 101, 102, 103], [104, 105, 106, 107]]);
    expect(windows.map((w) => [w.document, w.start, w.overlap])).toEqual([[0, 0, 0], [0, 4, 0], [0, 8, 0], [1, 0, 0], [1, 4, 0]]);
    expect(summary).toMatchObject({ documents: 2, tokens: 19, windows: 5, windowsAvailable: 5, tokensUsed: 18, seqLen: 4, stride: 4 });
  });

  it('overlapping stride stops at the first window that reaches the end', () => {
    const { windows } = cutWindows([doc(10)], { seqLen: 6, stride: 3 });
    expect(windows.map(arr)).toEqual([[0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], [6, 7, 8, 9]]);
    expect(windows.map((w) => w.overlap)).toEqual([0, 3, 3]);
  });

  it('stride > seqLen skips tokens', () => {
    expect(cutWindows([doc(10)], { seqLen: 2, stride: 5 }).windows.map(arr)).toEqual([[0, 1], [5, 6]]);
  });

  it('a window never spans two documents (property over many shapes)', () => {
    const docs = [3, 1, 17, 8, 2, 33, 5].map((n, d) => doc(n, d * 1000));
    for (const seqLen of [2, 3, 5, 8, 16, 64]) {
      for (const stride of [1, 2, seqLen, seqLen + 3]) {
        for (const w of cutWindows(docs, { seqLen, stride }).windows) {
          expect(w.ids.length).toBeGreaterThanOrEqual(2);
          expect(w.ids.length).toBeLessThanOrEqual(seqLen);
          const d = Math.floor(w.ids[0] / 1000);
          expect(d).toBe(w.document);
          // consecutive ids from one document, starting where the window says
          expect(arr(w)).toEqual(Array.from({ length: w.ids.length }, (_, i) => d * 1000 + w.start + i));
        }
      }
    }
  });

  it('prefixBos starts every window with BOS and cuts the rest in seqLen - 1 pieces', () => {
    const ids = [1, 10, 11, 12, 13, 14, 15, 16];
    const { windows } = cutWindows([{ ids }], { seqLen: 4, prefixBos: 1 });
    expect(windows.map(arr)).toEqual([[1, 10, 11, 12], [1, 13, 14, 15], [1, 16]]);
    expect(cutWindows([{ ids: [10, 11, 12] }], { seqLen: 4, prefixBos: 1 }).windows.map(arr)).toEqual([[1, 10, 11, 12]]);
  });

  it('truncate keeps only the first window of each document', () => {
    expect(cutWindows([doc(10), doc(3, 100)], { seqLen: 4, truncate: true }).windows.map(arr)).toEqual([[0, 1, 2, 3], [100, 101, 102]]);
  });

  it('--samples is deterministic per seed, without replacement, in original order', () => {
    const docs = Array.from({ length: 20 }, (_, d) => doc(50, d * 1000));
    const all = cutWindows(docs, { seqLen: 8 });
    const a = cutWindows(docs, { seqLen: 8, samples: 30, seed: 7 });
    const b = cutWindows(docs, { seqLen: 8, samples: 30, seed: 7 });
    const c = cutWindows(docs, { seqLen: 8, samples: 30, seed: 8 });
    const key = (w: TokenWindow) => `${w.document}:${w.start}`;
    expect(a.windows.map(key)).toEqual(b.windows.map(key));
    expect(a.windows.map(key)).not.toEqual(c.windows.map(key));
    expect(new Set(a.windows.map(key)).size).toBe(30);
    const order = all.windows.map(key);
    const positions = a.windows.map((w) => order.indexOf(key(w)));
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    expect(a.summary).toMatchObject({ windows: 30, windowsAvailable: all.windows.length, samples: 30, seed: 7 });
    // Asking for more than there are keeps them all.
    expect(cutWindows(docs, { seqLen: 8, samples: 10_000 }).windows).toHaveLength(all.windows.length);
  });

  it('sampleIndices is a fixed sequence per seed (pinned so a refactor cannot change samples silently)', () => {
    expect(sampleIndices(10, 4, 42)).toEqual(sampleIndices(10, 4, 42));
    expect(sampleIndices(10, 10, 3)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(sampleIndices(1000, 5, 1)).toEqual([3, 528, 627, 968, 981]);
  });

  it('--seq-len above max_position_embeddings names both numbers', () => {
    expect(() => cutWindows([doc(10)], { seqLen: 1024, maxPositionEmbeddings: 512 })).toThrow(
      expect.objectContaining({ code: 'ERR_SEQ_LEN', message: expect.stringMatching(/--seq-len 1024 .* max_position_embeddings 512/) }),
    );
  });

  it('bad options are usage errors naming the option', () => {
    expect(() => cutWindows([doc(10)], { seqLen: 1 })).toThrow(/--seq-len/);
    expect(() => cutWindows([doc(10)], { stride: 0 })).toThrow(/--stride/);
    expect(() => cutWindows([doc(10)], { samples: 0 })).toThrow(/--samples/);
  });

  it('no windows at all is ERR_DATA_EMPTY naming the data', () => {
    expect(() => cutWindowsOrFail([doc(1), doc(1)], 'calib.txt')).toThrow(expect.objectContaining({ code: 'ERR_DATA_EMPTY', message: expect.stringContaining('calib.txt') }));
  });

  it('summarises TinyStories in one line', async () => {
    const docs = await loadCalibrationDocuments([tinyStoriesText], { vocabSize: 512, modelDir: stories260kDir });
    const { summary } = cutWindows(docs, { seqLen: 256, maxPositionEmbeddings: 512 });
    expect(summary.tokens).toBe(docs.reduce((s, d) => s + d.ids.length, 0));
    expect(describeCalibration(summary)).toBe(`189 documents, ${summary.tokens.toLocaleString('en-US')} tokens -> ${summary.windows} windows of <= 256 tokens`);
    // Independent count: the stories260k README's "62,422 tokens" are the predictions of each
    // story truncated to 512 tokens (one fewer than its tokens).
    const first512 = cutWindows(docs, { seqLen: 512, truncate: true });
    expect(first512.summary.tokensUsed - first512.summary.windows).toBe(62422);
    expect(describeCalibration({ ...summary, windows: 30, windowsAvailable: 300, samples: 30, seed: 1, tokensUsed: 7000 })).toContain('(a sample of 300, seed 1), 7,000 tokens used');
  });
});

it('Sherlock as one stream, cut into <s> + 511-token windows, as the stories260k README does', async () => {
  const docs = await loadCalibrationDocuments([sherlockText], { vocabSize: 512, modelDir: stories260kDir });
  expect(docs).toHaveLength(1);
  expect(docs[0].ids.length).toBe(76952); // README: 76,952 tokens
  const { windows } = cutWindows(docs, { seqLen: 512, prefixBos: 1 });
  expect(windows.every((w) => w.ids[0] === 1 && w.ids.length <= 512)).toBe(true);
  expect(windows.reduce((s, w) => s + w.ids.length - 1, 0)).toBe(76951); // every token after the first predicted once
});

describe('batchWindows', () => {
  const windows = cutWindows([doc(100), doc(37, 1000), doc(5, 2000)], { seqLen: 16, stride: 7 }).windows;

  it.each([1, 5, 16, 17, 40, 1000])('budget %d: same windows, same order, each batch within budget unless one window', (budget) => {
    const batches = batchWindows(windows, budget);
    expect(batches.flat()).toEqual(windows);
    for (const b of batches) {
      const tokens = b.reduce((s, w) => s + w.ids.length, 0);
      expect(b.length === 1 || tokens <= budget).toBe(true);
      expect(b.length).toBeGreaterThan(0);
    }
  });

  it('a bad budget names --batch-tokens', () => {
    expect(() => batchWindows(windows, 0)).toThrow(/--batch-tokens/);
  });
});
