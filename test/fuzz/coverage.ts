/**
 * Coverage feedback for the fuzzer from V8's own block coverage (node:inspector,
 * Profiler.startPreciseCoverage with detailed: true), so no instrumenting build or native
 * fuzzer is needed. Each input's blocks are read (and V8's counters reset) right after it runs.
 *
 * V8 reports a block only where its count differs from the enclosing range's, so a block that
 * ran exactly as often as its function is not listed. We therefore remember every block range
 * ever reported and give each the count of the innermost range reported for this input that
 * contains it. A feature is (block, log2 bucket of its count), as libFuzzer buckets counters.
 */
import * as inspector from 'node:inspector';

interface Range { startOffset: number; endOffset: number; count: number }
interface FunctionCoverage { functionName: string; ranges: Range[]; isBlockCoverage: boolean }
interface ScriptCoverage { url: string; functions: FunctionCoverage[] }

function bucket(count: number): number {
  if (count <= 0) return 0;
  if (count < 4) return count;
  return 2 + Math.min(Math.floor(Math.log2(count)), 14);
}

export class BlockCoverage {
  private readonly session = new inspector.Session();
  /** Per script URL, every block range ever reported, as "start:end". */
  private readonly known = new Map<string, Map<string, [number, number]>>();

  /** `include` picks the scripts whose blocks count (e.g. the parser sources). */
  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** In-process inspector sessions answer synchronously; this returns that answer. */
  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    let answered = false;
    this.session.post(method, params ?? {}, (err, res) => { error = err; result = res; answered = true; });
    if (!answered) throw new Error(`inspector did not answer ${method} synchronously`);
    if (error) throw error;
    return result;
  }

  /** The features of everything run since the last call (which resets V8's counters). */
  take(): Set<string> {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const features = new Set<string>();
    for (const script of result) {
      if (!this.include(script.url)) continue;
      let known = this.known.get(script.url);
      if (!known) this.known.set(script.url, (known = new Map()));
      const reported: Range[] = [];
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          reported.push(r);
          const key = `${r.startOffset}:${r.endOffset}`;
          if (!known.has(key)) known.set(key, [r.startOffset, r.endOffset]);
        }
      }
      // Innermost containing range = the smallest reported range that contains the block.
      for (const [key, [start, end]] of known) {
        let best: Range | null = null;
        for (const r of reported) {
          if (r.startOffset <= start && r.endOffset >= end && (!best || r.endOffset - r.startOffset < best.endOffset - best.startOffset)) best = r;
        }
        const b = best ? bucket(best.count) : 0;
        if (b > 0) features.add(`${script.url}@${key}#${b}`);
      }
    }
    return features;
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}
