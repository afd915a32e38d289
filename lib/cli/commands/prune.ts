/**
 * `shortgpt-native prune`: write a copy of a checkpoint without the chosen layers. The layers are
 * named with --remove-layers (`removeChosenLayers`, here) or chosen by score with --calib
 * (lib/cli/pruneByScore.ts, through the library's prune(), which also writes the report).
 */
import { openCheckpoint } from '../../checkpoint/checkpoint';
import type { Checkpoint } from '../../checkpoint/types';
import { ShortGptError, UsageError } from '../../errors';
import { formatMapping, planLayerRemoval } from '../../prune/layerPlan';
import { checkOutputPlacement } from '../../prune/atomicOutput';
import { rewriteOpenedCheckpoint, type RewriteProgress, type RewriteResult } from '../../prune/rewrite';
import { signalExitCode, trapInterrupts } from '../../prune/signals';
import { flag, intListOption, noExtraPositionals, parseCommandLine, requirePositional, stringOption } from '../args';
import type { CliIO, Command } from '../command';
import { checkDeviceOption } from '../engineOption';
import { PRUNE_BY_SCORE_HELP, PRUNE_BY_SCORE_SPEC, pruneByScoreOptionsGiven, runPruneByScore } from '../pruneByScore';

const HELP = `${PRUNE_BY_SCORE_HELP}

Or with the layers named:

Usage: shortgpt-native prune MODEL_DIR --remove-layers LIST --out OUT_DIR [--force] [--json]

Writes a copy of the checkpoint in MODEL_DIR without the listed decoder layers: their tensors
are dropped, later layers are renumbered contiguously, every other tensor is copied byte for
byte in its own dtype, config.json gets the new num_hidden_layers (and per-layer lists such as
layer_types sliced), and the other files (tokenizer, generation_config.json, ...) are copied.
The output records what was removed in shortgpt.json and in each safetensors __metadata__.

Options:
  --remove-layers LIST   layers to delete: 0-based, inclusive indices, comma-separated,
                         ranges allowed: "3,5" or "21-29" (= 21 through 29) or "2,10-12"
  --out OUT_DIR          where to write the pruned checkpoint (must not be inside MODEL_DIR)
  --force                replace OUT_DIR if it exists and is not empty (only once the new
                         checkpoint is complete)
  --json                 print the result as one JSON document on stdout
  -h, --help

The output is written into a temporary directory beside OUT_DIR and renamed into place when
complete and read back; an interrupted run (Ctrl-C) leaves neither. MODEL_DIR is never written.
Exit status: 0 success, 1 runtime failure (bad checkpoint, I/O), 2 usage error,
130/143 interrupted by SIGINT/SIGTERM.`;

export interface RemovalOptions {
  force: boolean;
  json: boolean;
  /** The option that named the layers, for error messages. */
  layersOption: string;
  extraMetadata?: Record<string, string>;
}

/**
 * Validates `layers` against the opened checkpoint (as a usage error naming `layersOption`),
 * rewrites it into `outDir` with Ctrl-C handling, and prints the result. Returns the exit status.
 */
export async function removeChosenLayers(ckpt: Checkpoint, layers: number[], outDir: string, opts: RemovalOptions, io: CliIO): Promise<number> {
  try {
    planLayerRemoval(ckpt.config.numHiddenLayers, layers, opts.layersOption);
  } catch (e) {
    if (e instanceof ShortGptError) throw new UsageError(`prune: ${e.message}`);
    throw e;
  }
  const trap = trapInterrupts();
  const progress = progressPrinter(io);
  let result: RewriteResult;
  try {
    result = await rewriteOpenedCheckpoint(ckpt, outDir, {
      removeLayers: layers,
      force: opts.force,
      signal: trap.signal,
      onProgress: progress.update,
      extraMetadata: opts.extraMetadata,
    });
  } catch (e) {
    progress.clear();
    const sig = trap.received();
    if (sig !== undefined && e instanceof ShortGptError && e.code === 'ERR_ABORTED') {
      io.stderr.write(`shortgpt-native: prune interrupted by ${sig}; nothing was written to ${outDir}\n`);
      return signalExitCode(sig);
    }
    throw e;
  } finally {
    trap.dispose();
  }
  progress.clear();
  io.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : describe(result));
  return 0;
}

function describe(r: RewriteResult): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const lines = [
    `pruned ${r.sourceDir} (${r.sourceLayers} layers) -> ${r.outDir} (${r.numHiddenLayers} layers)`,
    `removed layers (0-based): ${r.removedLayers.join(', ')}`,
    `layer mapping (old->new): ${formatMapping({ kept: r.keptLayers })}`,
    `weights: ${r.files.length} file${r.files.length === 1 ? '' : 's'}${r.sharded ? ' (sharded)' : ''}, ${r.tensorsWritten} tensors, ${mib(r.tensorBytes)}; ${r.tensorsRemoved.length} tensors removed`,
    `config.json: num_hidden_layers ${r.sourceLayers} -> ${r.numHiddenLayers}${r.configFieldsSliced.length ? `; sliced ${r.configFieldsSliced.join(', ')}` : ''}${r.configFieldsAdjusted.length ? `; adjusted ${r.configFieldsAdjusted.join(', ')}` : ''}`,
    `copied ${r.copiedFiles.length} other file${r.copiedFiles.length === 1 ? '' : 's'}${r.copiedFiles.length ? `: ${r.copiedFiles.join(', ')}` : ''}`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** A one-line percentage on stderr when it is a terminal; silent otherwise (logs, tests). */
function progressPrinter(io: CliIO): { update: (p: RewriteProgress) => void; clear: () => void } {
  if (!io.stderr.isTTY) return { update: () => undefined, clear: () => undefined };
  let last = '';
  return {
    update: (p) => {
      const pct = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
      const line = p.phase === 'tensors' ? `copying tensors ${pct}%` : p.phase === 'files' ? 'copying other files' : 'verifying';
      if (line !== last) io.stderr.write(`\r${line.padEnd(last.length)}`);
      last = line;
    },
    clear: () => {
      if (last) io.stderr.write(`\r${' '.repeat(last.length)}\r`);
      last = '';
    },
  };
}

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'score layers on calibration data and write a copy of a checkpoint without the least influential (or named) ones',
  help: HELP,
  async run(argv, io) {
    const parsed = parseCommandLine('prune', argv, {
      'remove-layers': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      ...PRUNE_BY_SCORE_SPEC,
    });
    const modelDir = requirePositional('prune', parsed, 0, 'MODEL_DIR');
    noExtraPositionals('prune', parsed, 1);
    const byScore = pruneByScoreOptionsGiven(parsed);
    if (parsed.values['remove-layers'] !== undefined && byScore.length > 0) {
      throw new UsageError(`prune: --remove-layers names the layers itself; it cannot be combined with --${byScore.join(', --')}`);
    }
    if (parsed.values['remove-layers'] === undefined && byScore.length > 0) {
      if (parsed.values.calib === undefined) throw new UsageError('prune: --calib DATA is required to choose layers by score (or name them with --remove-layers)\nRun `shortgpt-native prune --help` for usage.');
      return runPruneByScore(modelDir, parsed, io);
    }
    // --remove-layers computes nothing, so --device/--threads are ignored, but a bad value is still a usage error.
    checkDeviceOption('prune', parsed);
    const out = stringOption(parsed, 'out');
    if (out === undefined || out === '') throw new UsageError('prune: --out OUT_DIR is required\nRun `shortgpt-native prune --help` for usage.');
    const layers = intListOption('prune', parsed, 'remove-layers');
    if (layers === undefined) throw new UsageError('prune: --remove-layers LIST is required (0-based layer indices, e.g. 3,5 or 21-29), or choose layers by score with --calib DATA and --remove N or --ratio R\nRun `shortgpt-native prune --help` for usage.');
    try {
      checkOutputPlacement(modelDir, out);
    } catch (e) {
      if (e instanceof ShortGptError) throw new UsageError(`prune: --out: ${e.message}`);
      throw e;
    }
    const ckpt = await openCheckpoint(modelDir);
    return removeChosenLayers(ckpt, layers, out, { force: flag(parsed, 'force'), json: flag(parsed, 'json'), layersOption: '--remove-layers' }, io);
  },
};
