/**
 * The CPU backend's ThreadPool (native/core/thread_pool.cc) through its test export: the
 * partition is contiguous, deterministic and covers [0, n) exactly once; workers survive many
 * back-to-back loops; an exception in any chunk reaches the caller; nested loops run inline.
 */
import { loadBinding } from '../../lib/engine/binding';
import { thrown } from './half';

const binding = loadBinding();

/** The partition the pool documents: chunk c of `chunks` is [n*c/chunks, n*(c+1)/chunks). */
function expectedChunks(n: number, threads: number): Array<[number, number, number]> {
  const chunks = Math.min(threads, n);
  return Array.from({ length: chunks }, (_, c) => [Math.floor((n * c) / chunks), Math.floor((n * (c + 1)) / chunks), c]);
}

describe('ThreadPool.parallelFor', () => {
  it.each([
    [1, 1],
    [10, 1],
    [10, 2],
    [10, 3],
    [7, 7],
    [3, 7],
    [1000, 4],
  ])('splits n=%i over %i threads into contiguous chunks, each index once', (n, threads) => {
    const r = binding.threadPoolForTest(n, threads, 1, -1, false);
    expect(r.chunks).toEqual(expectedChunks(n, threads));
    expect(Array.from(r.visits)).toEqual(new Array(n).fill(1));
  });

  it('does nothing for n = 0', () => {
    const r = binding.threadPoolForTest(0, 3, 1, -1, false);
    expect(r.chunks).toEqual([]);
    expect(r.visits.length).toBe(0);
  });

  it('runs 5000 loops back to back on one pool without losing a chunk', () => {
    const r = binding.threadPoolForTest(64, 3, 5000, -1, false);
    expect(Array.from(r.visits)).toEqual(new Array(64).fill(5000));
  });

  it.each([0, 1, 2])('rethrows an exception from chunk %i on the caller and stays usable', (chunk) => {
    expect(thrown(() => binding.threadPoolForTest(30, 3, 5, chunk, false))).toBe(
      `Error: threadPoolForTest failed: chunk ${chunk} failed`,
    );
    // A fresh pool after a failure, and the same export, still work.
    expect(Array.from(binding.threadPoolForTest(30, 3, 5, -1, false).visits)).toEqual(new Array(30).fill(5));
  });

  it('runs a nested parallelFor inline instead of deadlocking', () => {
    const r = binding.threadPoolForTest(50, 2, 100, -1, true);
    expect(Array.from(r.visits)).toEqual(new Array(50).fill(100));
  });

  it('names bad arguments', () => {
    expect(thrown(() => binding.threadPoolForTest(10, 0, 1, -1, false))).toMatch(/^RangeError: threads must be in \[1, /);
    expect(thrown(() => binding.threadPoolForTest(10, 2, 1, -1, 'no' as unknown as boolean))).toBe('TypeError: nested must be a boolean');
  });
});
