/**
 * Runs the library's `prune` for a command (prune --calib, demo): progress and notes on stderr,
 * Ctrl-C stops at the next batch or chunk and leaves nothing behind, the result on stdout as
 * text or as exactly one JSON document.
 */
import { ShortGptError } from '../errors';
import { prune, type PruneOptions, type PruneResult } from '../prune/prune';
import { signalExitCode, trapInterrupts } from '../prune/signals';
import type { CliIO } from './command';
import { progressLine } from './progress';
import { resultText } from './pruneText';

export interface PruneCliOptions {
  json: boolean;
  quiet: boolean;
  /** Printed before the result text (the demo's introduction). */
  heading?: string;
  /** Extra fields for the JSON document. */
  jsonExtra?: Record<string, unknown>;
}

export async function runPruneCli(model: string, options: PruneOptions, io: CliIO, cli: PruneCliOptions): Promise<{ status: number; result?: PruneResult }> {
  const progress = progressLine(io, cli.quiet);
  const trap = trapInterrupts();
  let result: PruneResult;
  try {
    result = await prune(model, { ...options, signal: trap.signal, onProgress: progress.update, onNote: progress.note });
  } catch (e) {
    progress.clear();
    const sig = trap.received();
    if (sig !== undefined && e instanceof ShortGptError && e.code === 'ERR_ABORTED') {
      io.stderr.write(`shortgpt-native: interrupted by ${sig}; nothing was written${options.out ? ` to ${options.out}` : ''}\n`);
      return { status: signalExitCode(sig) };
    }
    throw e;
  } finally {
    trap.dispose();
  }
  progress.clear();
  if (cli.json) {
    io.stdout.write(`${JSON.stringify({ ...(cli.jsonExtra ?? {}), ...result.report }, null, 2)}\n`);
  } else {
    io.stdout.write(`${cli.heading ?? ''}${resultText(result)}`);
  }
  return { status: 0, result };
}
