/**
 * Progress on stderr for long steps: one line, redrawn in place, with the phase, layer, windows,
 * tokens per second (whole-model tokens: token-layers / layers) and an ETA for the phase. Only
 * when stderr is a terminal and --quiet was not given: logs and pipes get no carriage returns.
 */
import type { WorkProgress } from '../prune/strategies/passes';
import type { CliIO } from './command';

const PHASE_TEXT: Record<string, string> = {
  score: 'scoring',
  rescore: 're-scoring',
  'eval-before': 'perplexity before',
  'eval-after': 'perplexity after',
  eval: 'perplexity',
  rewrite: 'writing',
};

export interface ProgressLine {
  update(p: WorkProgress): void;
  /** Erases the line (before printing anything else on stderr). */
  clear(): void;
  /** Prints a note on its own line, keeping the progress line below it. */
  note(message: string): void;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

function rate(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
}

/** The line for one progress event, given the seconds since its phase began. */
export function formatProgress(p: WorkProgress, elapsed: number): string {
  const phase = PHASE_TEXT[p.phase] ?? p.phase;
  const frac = p.workTotal > 0 ? p.workDone / p.workTotal : 0;
  const eta = frac > 0 && elapsed > 0 ? (elapsed * (1 - frac)) / frac : Number.NaN;
  if (p.phase === 'rewrite') {
    return `${phase} ${(100 * frac).toFixed(0)}%  ${(p.workDone / 2 ** 20).toFixed(1)}/${(p.workTotal / 2 ** 20).toFixed(1)} MiB  ETA ${formatDuration(eta)}`;
  }
  const step = p.step !== undefined ? ` step ${p.step}` : '';
  const tps = elapsed > 0 && p.layers > 0 ? p.workDone / p.layers / elapsed : 0;
  return `${phase}${step}  layer ${p.layer + 1}/${p.layers}  windows ${p.windowsDone}/${p.windowsTotal}  ${rate(tps)} tok/s  ETA ${formatDuration(eta)}`;
}

export function progressLine(io: CliIO, quiet: boolean): ProgressLine {
  const enabled = !quiet && io.stderr.isTTY === true;
  let shown = '';
  let phase = '';
  let step: number | undefined;
  let t0 = 0;
  let lastDraw = 0;
  const clear = (): void => {
    if (shown) io.stderr.write(`\r${' '.repeat(shown.length)}\r`);
    shown = '';
  };
  return {
    update(p) {
      if (!enabled) return;
      const now = performance.now();
      if (p.phase !== phase || p.step !== step) {
        phase = p.phase;
        step = p.step;
        t0 = now;
        lastDraw = 0;
      }
      // At most ~10 redraws a second: a terminal is slower than a small model's batches.
      if (now - lastDraw < 100 && p.workDone < p.workTotal) return;
      lastDraw = now;
      const line = formatProgress(p, (now - t0) / 1000);
      io.stderr.write(`\r${line.padEnd(shown.length)}`);
      shown = line;
    },
    clear,
    note(message) {
      if (quiet) return;
      const again = shown;
      clear();
      io.stderr.write(`${message}\n`);
      if (again && enabled) {
        io.stderr.write(again);
        shown = again;
      }
    },
  };
}
