/**
 * Progress on stderr for long jobs: one line, redrawn in place, never wider than the terminal:
 *
 *    42% scoring  layer 3/5  ETA 0:06  12.3k tok/s
 *
 * The percentage and ETA are the whole job's (tokenizing, scoring, re-scoring, perplexity,
 * writing: lib/prune/jobProgress.ts), so they run from 0 to 100% once; the middle names the step.
 * What does not fit the width is left out, least useful first (rate, then detail, then ETA), so
 * the line never wraps: a wrapped line cannot be redrawn in place, and each redraw would leave a
 * stale line behind. Only when stderr is a terminal and --quiet was not given: logs and pipes get
 * no carriage returns or escape sequences.
 */
import type { WorkProgress } from '../prune/strategies/passes';
import { formatBytesOf, formatCount, formatDuration, formatSi } from '../util/format';
import type { CliIO } from './command';

export { formatDuration } from '../util/format';

const PHASE_TEXT: Record<string, string> = {
  tokenize: 'tokenizing',
  'tokenize-eval': 'tokenizing eval data',
  score: 'scoring',
  rescore: 're-scoring',
  'eval-before': 'perplexity before',
  'eval-after': 'perplexity after',
  'eval-curve': 'quality curve',
  heal: 'healing',
  'eval-healed': 'perplexity healed',
  eval: 'perplexity',
  rewrite: 'writing',
};

/** Width used when a terminal does not report its own. */
const DEFAULT_COLUMNS = 80;
/** Redraws at most this often: a terminal is slower than a small model's batches. */
const REDRAW_MS = 100;
/** Erase from the cursor to the end of the line / of the screen (ECMA-48 EL, ED). */
const ERASE_LINE = '\x1b[K';
const ERASE_BELOW = '\x1b[J';

export interface ProgressLine {
  update(p: WorkProgress): void;
  /** Erases the line (before printing anything else on stderr); the cursor is left at column 0. */
  clear(): void;
  /** Prints a note on its own line, keeping the progress line below it. */
  note(message: string): void;
}

/** What the line needs besides the event: seconds since its phase began (for the rate and a job-less ETA). */
export interface LineContext {
  phaseSeconds: number;
  /** Characters available; the line is at most width - 1 (the last column would wrap on some terminals). */
  width: number;
}

function fraction(p: WorkProgress): number {
  if (p.job) return p.job.fraction;
  return p.workTotal > 0 ? Math.min(1, p.workDone / p.workTotal) : 0;
}

function etaSeconds(p: WorkProgress, phaseSeconds: number): number {
  if (p.job) return p.job.etaSeconds;
  const f = p.workTotal > 0 ? p.workDone / p.workTotal : 0;
  return f > 0 && phaseSeconds > 0 ? (phaseSeconds * (1 - f)) / f : Number.NaN;
}

/**
 * The step's own position: layer (and batch), bytes of text, bytes written. `short`: one counter
 * only, the batch when there are several (the layer cycles within each batch, too fast to read).
 */
function detail(p: WorkProgress, short = false): string {
  if (p.phase === 'tokenize' || p.phase === 'tokenize-eval') {
    if (p.workTotal > 0) return formatBytesOf(p.workDone, p.workTotal);
    return p.documentsTotal !== undefined ? `${formatCount(p.documentsDone ?? 0)}/${formatCount(p.documentsTotal)} docs` : '';
  }
  if (p.phase === 'rewrite') return formatBytesOf(p.workDone, p.workTotal);
  if (p.layer < 0) return '';
  const batch = p.batches !== undefined && p.batches > 1 ? `batch ${(p.batch ?? 0) + 1}/${p.batches}` : '';
  if (short && batch) return batch;
  return `${batch ? `${batch} ` : ''}layer ${p.layer + 1}/${p.layers}`;
}

/** A rate needs this much time behind it to mean anything. */
const MIN_RATE_SECONDS = 0.5;

function rate(p: WorkProgress, phaseSeconds: number): string {
  if (phaseSeconds < MIN_RATE_SECONDS || p.workDone <= 0) return '';
  if (p.phase === 'tokenize' || p.phase === 'tokenize-eval' || p.phase === 'rewrite') {
    return p.workTotal > 0 ? `${formatSi(p.workDone / phaseSeconds)}B/s` : '';
  }
  // Whole-model tokens: token-layers / the model's layers.
  return p.layers > 0 ? `${formatSi(p.workDone / p.layers / phaseSeconds)} tok/s` : '';
}

/**
 * The line for one progress event, at most `ctx.width - 1` characters. Always the percentage
 * and the step's name (cut if even they do not fit); then, as room allows, the ETA, the step's
 * position, the rate; shown in reading order.
 */
export function formatProgress(p: WorkProgress, ctx: LineContext): string {
  const max = Math.max(1, Math.floor(ctx.width) - 1);
  const pct = `${Math.floor(100 * fraction(p))}%`.padStart(4);
  const name = `${PHASE_TEXT[p.phase] ?? p.phase}${p.step !== undefined ? ` step ${p.step}${p.steps !== undefined ? `/${p.steps}` : ''}` : ''}`;
  const head = `${pct} ${name}`;
  if (head.length >= max) return head.slice(0, max);
  const parts = { detail: detail(p), eta: `ETA ${formatDuration(etaSeconds(p, ctx.phaseSeconds))}`, rate: rate(p, ctx.phaseSeconds) };
  const order = ['detail', 'eta', 'rate'] as const;
  const shown = new Set<string>();
  const build = (): string => [head, ...order.filter((k) => shown.has(k)).map((k) => parts[k])].join('  ');
  const tryAdd = (k: (typeof order)[number]): void => {
    if (!parts[k]) return;
    shown.add(k);
    if (build().length > max) shown.delete(k);
  };
  tryAdd('eta');
  tryAdd('detail');
  if (!shown.has('detail')) {
    parts.detail = detail(p, true);
    tryAdd('detail');
  }
  // The rate only beside the position: alone it would say how fast without saying where.
  if (shown.has('detail') || !parts.detail) tryAdd('rate');
  return build();
}

type TtyStream = CliIO['stderr'] & {
  columns?: number;
  on?: (event: 'resize', fn: () => void) => unknown;
  off?: (event: 'resize', fn: () => void) => unknown;
};

export function progressLine(io: CliIO, quiet: boolean): ProgressLine {
  const err = io.stderr as TtyStream;
  const enabled = !quiet && err.isTTY === true;
  const columns = (): number => (typeof err.columns === 'number' && err.columns > 0 ? err.columns : DEFAULT_COLUMNS);
  /** What is on screen: the line and its length (0: nothing). */
  let shown = '';
  let last: WorkProgress | undefined;
  let phase = '';
  let t0 = 0;
  let lastDraw = 0;
  let listening = false;

  /**
   * Moves to the start of the line and erases it. The line was narrower than the terminal when
   * drawn; if the terminal has since narrowed, a reflowing terminal (tmux, most emulators) has
   * wrapped it onto several rows, and the cursor sits on the last of them.
   */
  const erase = (): string => {
    if (!shown) return '\r';
    const rows = Math.ceil(shown.length / columns());
    return rows > 1 ? `\x1b[${rows - 1}A\r${ERASE_BELOW}` : `\r${ERASE_LINE}`;
  };
  const draw = (p: WorkProgress): void => {
    const now = performance.now();
    const line = formatProgress(p, { phaseSeconds: (now - t0) / 1000, width: columns() });
    err.write(`${erase()}${line}`);
    shown = line;
    lastDraw = now;
  };
  const onResize = (): void => {
    if (last && shown) draw(last);
  };
  const clear = (): void => {
    if (shown) err.write(`${erase()}`);
    shown = '';
    if (listening) {
      err.off?.('resize', onResize);
      listening = false;
    }
  };
  return {
    update(p) {
      if (!enabled) return;
      const now = performance.now();
      const id = `${p.phase}#${p.step ?? ''}`;
      const changed = id !== phase;
      if (changed) {
        phase = id;
        t0 = now;
      }
      last = p;
      if (!changed && now - lastDraw < REDRAW_MS && p.workDone < p.workTotal) return;
      if (!listening && typeof err.on === 'function') {
        err.on('resize', onResize);
        listening = true;
      }
      draw(p);
    },
    clear,
    note(message) {
      if (quiet) return;
      const again = shown !== '' && enabled ? last : undefined;
      clear();
      err.write(`${message}\n`);
      if (again) {
        if (!listening && typeof err.on === 'function') {
          err.on('resize', onResize);
          listening = true;
        }
        draw(again);
      }
    },
  };
}
