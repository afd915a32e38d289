/**
 * `shortgpt-native prune`: write a copy of a checkpoint without the chosen layers. The layers are
 * named with --remove-layers (`removeChosenLayers`, here) or chosen by score with --calib
 * (lib/cli/pruneByScore.ts, through the library's prune(), which also writes the report).
 */
import { QUALITY_BOUND_OPTION_HELP } from '../qualityBoundOption';
import { openCheckpoint } from '../../checkpoint/checkpoint';
import type { Checkpoint } from '../../checkpoint/types';
import { ShortGptError, UsageError } from '../../errors';
import { formatMapping, planLayerRemoval } from '../../prune/layerPlan';
import { checkOutputPlacement } from '../../prune/atomicOutput';
import { rewriteOpenedCheckpoint, type RewriteProgress, type RewriteResult } from '../../prune/rewrite';
import { signalExitCode, trapInterrupts } from '../../prune/signals';
import { flag, intListOption, noExtraPositionals, parseCommandLine, requirePositional, stringOption, type Parsed } from '../args';
import type { CliIO, Command } from '../command';
import { checkDeviceOption } from '../engineOption';
import { progressLine } from '../progress';
import { formatBytes, plural } from '../../util/format';
import { printable } from '../../util/printable';
import { MODEL_OPTION_SPEC, modelOptionHelp, modelOptions } from '../modelOption';
import { resolveModelLocation } from '../../checkpoint/modelLocation';
import { CALIB_OPTION_HELP } from '../calibOptions';
import { BUNDLED_MODEL, BUNDLED_TEXT, examplesBlock, shownPath, type Example } from '../examples';
import { PRUNE_BY_SCORE_SPEC, pruneByScoreOptionsGiven, runPruneByScore } from '../pruneByScore';
import { HEAL_OPTION_HELP, HEAL_WITH_NAMED_LAYERS, runHealedRemoval } from '../healOption';

/** Worked examples: the first runs as printed on the bundled model; the others name real models. */
function pruneExamples(): Example[] {
  const model = shownPath(BUNDLED_MODEL);
  const text = shownPath(BUNDLED_TEXT);
  return [
    {
      what: "runnable now: remove the bundled 5-layer model's least influential layer, scored on 48 windows",
      command: `prune ${model} --calib ${text} --samples 48 --remove 1 --out stories260k-pruned`,
    },
    { what: "the paper's cut: the 9 layers of lowest Block Influence on PG19 text; perplexity on wiki.txt", command: 'prune ./Llama-2-7b-hf --calib pg19.txt --remove 9 --eval wiki.txt --out ./Llama-2-7b-pruned' },
    { what: 'which quarter of the layers would go, re-scored after each removal; writes nothing', command: 'prune ./Llama-3.1-8B --calib pg19.txt --ratio 0.25 --strategy iterative --dry-run' },
    { what: 'remove layers you name (0-based; 21-29 = 21 through 29), without scoring', command: 'prune ./Llama-2-7b-hf --remove-layers 21-29 --out ./Llama-2-7b-pruned' },
  ];
}

function pruneHelp(): string {
  return `${examplesBlock(pruneExamples())}Usage: shortgpt-native prune MODEL --calib DATA (--remove N | --ratio R) (--out OUT_DIR | --dry-run) [options]
       shortgpt-native prune MODEL --remove-layers LIST --out OUT_DIR [--force] [--json]

Scores every layer on the calibration data (or takes the layers named) and writes a copy of
MODEL without them: kept tensors byte for byte, later layers renumbered, config.json updated,
other files copied; plus shortgpt.json, mergekit.yaml, README.md (model card) and, when scored,
report.json/.md and chart.svg. OUT_DIR appears complete or not at all; MODEL is never written.

Choosing layers:
  --calib DATA           calibration data (repeatable; see Data options)
  --scores FILE          choose from merged scores (merge --out FILE) instead of --calib
  --remove N, --ratio R  delete N layers, or round(R x layers) layers (0 < R < 1)
  --metric M             bi (Block Influence, default), angular (mean angle / pi) or relmag
                         (||out - in|| / ||out||); lower = less influential for all three
  --strategy S           one-shot (default; ShortGPT: the N lowest at once), iterative (remove the
                         lowest, re-score the shortened model, repeat), block (the N contiguous
                         layers closest in and out on the last token, Gromov et al. 2024)
  --keep-first K, --keep-last K  never delete the first / last K layers
  --remove-layers LIST   delete these, unscored (0-based, inclusive): "3,5", "21-29", "2,10-12"
${HEAL_OPTION_HELP}
${QUALITY_BOUND_OPTION_HELP}
  --bootstrap N          resample the windows N times (--seed): 95% intervals and how often each
                         chosen layer is chosen again (one-shot; report.md flags under 90%)

Output:
  --out OUT_DIR          where to write the pruned model (not inside MODEL)
  --force                replace a non-empty OUT_DIR, only once the new model is complete
  --dry-run              print the layers, parameters and bytes saved, and the cut as mergekit
                         slices and llama.cpp --prune-layers; no perplexity, nothing written
  --eval DATA            held-out data: perplexity before and after (repeatable; every window)
  --json                 the report (with --remove-layers: the rewrite's result) as JSON on stdout
  --quiet                no progress or notes on stderr
${modelOptionHelp(25)}
  -h, --help

Engine:
  --device D             auto (default), cpu or cuda; cuda where CUDA is not usable is an error
  --threads N            CPU worker threads (default: all hardware threads)
  --precision P          f32 (default) or bf16; both, and CUDA's: shortgpt-native score --help

${CALIB_OPTION_HELP}

Exit status: 0 success, 1 runtime failure, 2 usage error, 130/143 interrupted (SIGINT/SIGTERM).`;
}

export interface RemovalOptions {
  force: boolean;
  json: boolean;
  /** The option that named the layers, for error messages. */
  layersOption: string;
  extraMetadata?: Record<string, string>;
  /** No progress line (--quiet). */
  quiet?: boolean;
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
  const progress = progressPrinter(io, ckpt.config.numHiddenLayers, opts.quiet === true);
  let result: RewriteResult;
  try {
    result = await rewriteOpenedCheckpoint(ckpt, outDir, {
      removeLayers: layers,
      force: opts.force,
      signal: trap.signal,
      onProgress: progress.update,
      onNote: progress.note,
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
  io.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : describe(result, progress.noted));
  return 0;
}

/** The summary on stdout; warnings already shown as notes on stderr (`noted`) are not repeated. */
function describe(r: RewriteResult, noted: ReadonlySet<string>): string {
  const lines = [
    `pruned ${r.sourceDir} (${r.sourceLayers} layers) -> ${r.outDir} (${r.numHiddenLayers} layers)`,
    `removed layers (0-based): ${r.removedLayers.join(', ')}`,
    `layer mapping (old->new): ${formatMapping({ kept: r.keptLayers })}`,
    `weights: ${plural(r.files.length, 'file')}${r.sharded ? ' (sharded)' : ''}, ${plural(r.tensorsWritten, 'tensor')}, ${formatBytes(r.tensorBytes)}; ${plural(r.tensorsRemoved.length, 'tensor')} removed`,
    `config.json: num_hidden_layers ${r.sourceLayers} -> ${r.numHiddenLayers}${r.configFieldsSliced.length ? `; sliced ${r.configFieldsSliced.join(', ')}` : ''}${r.configFieldsAdjusted.length ? `; adjusted ${r.configFieldsAdjusted.join(', ')}` : ''}`,
    // File names come from the model folder: escaped for the terminal.
    `copied ${plural(r.copiedFiles.length, 'other file')}${r.copiedFiles.length ? `: ${r.copiedFiles.map(printable).join(', ')}` : ''}`,
    `wrote ${r.generatedFiles.map((f) => (f === 'README.md' ? 'README.md (the model card, with what was removed on top)' : f === 'mergekit.yaml' ? 'mergekit.yaml (the same cut for mergekit-yaml)' : f)).join(', ')}`,
    ...r.warnings.filter((w) => !noted.has(w)).map((w) => `warning: ${printable(w)}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** The rewrite on the shared progress line (lib/cli/progress.ts): a terminal only, fitted to its width. */
function progressPrinter(io: CliIO, layers: number, quiet: boolean): { update: (p: RewriteProgress) => void; clear: () => void; note: (message: string) => void; noted: Set<string> } {
  const line = progressLine(io, quiet);
  // What went to stderr as a note (nothing under --quiet), so the summary does not repeat it.
  const noted = new Set<string>();
  return {
    noted,
    update: (p) => line.update({ phase: 'rewrite', layer: -1, layers, windowsDone: 0, windowsTotal: 0, workDone: p.bytesDone, workTotal: p.bytesTotal }),
    clear: () => line.clear(),
    note: (message) => {
      if (!quiet) noted.add(message);
      line.note(message);
    },
  };
}

/**
 * The directory MODEL names (a hub id's snapshot), so that OUT is checked against the real
 * source (checkOutputPlacement); a bad placement is a usage error.
 */
function sourceDirFor(modelDir: string, out: string, parsed: Parsed): string {
  const model = resolveModelLocation(modelDir, modelOptions('prune', parsed)).dir;
  try {
    checkOutputPlacement(model, out);
  } catch (e) {
    if (e instanceof ShortGptError) throw new UsageError(`prune: --out: ${e.message}`);
    throw e;
  }
  return model;
}

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'score layers on calibration data and write a copy of a checkpoint without the least influential (or named) ones',
  get help() {
    return pruneHelp();
  },
  async run(argv, io) {
    const parsed = parseCommandLine('prune', argv, {
      'remove-layers': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      ...PRUNE_BY_SCORE_SPEC,
      ...MODEL_OPTION_SPEC,
    });
    const modelDir = requirePositional('prune', parsed, 0, 'MODEL_DIR');
    noExtraPositionals('prune', parsed, 1);
    const byScore = pruneByScoreOptionsGiven(parsed);
    // --remove-layers with --heal: the named cut, healed on --calib data (lib/cli/healOption.ts).
    const healNamed = parsed.values['remove-layers'] !== undefined && parsed.values.heal !== undefined;
    const notWithNamed = healNamed ? byScore.filter((k) => !HEAL_WITH_NAMED_LAYERS.has(k)) : byScore;
    if (parsed.values['remove-layers'] !== undefined && notWithNamed.length > 0) {
      throw new UsageError(`prune: --remove-layers names the layers itself; it cannot be combined with --${notWithNamed.join(', --')}`);
    }
    if (healNamed) {
      const out = stringOption(parsed, 'out');
      if (out === undefined || out === '') throw new UsageError('prune: --out OUT_DIR is required\nRun `shortgpt-native prune --help` for usage.');
      const layers = intListOption('prune', parsed, 'remove-layers') as number[];
      const model = sourceDirFor(modelDir, out, parsed);
      return runHealedRemoval(model, layers, out, parsed, io);
    }
    if (parsed.values['remove-layers'] !== undefined && byScore.length > 0) {
      throw new UsageError(`prune: --remove-layers names the layers itself; it cannot be combined with --${byScore.join(', --')}`);
    }
    if (parsed.values['remove-layers'] === undefined && byScore.length > 0) {
      if (parsed.values.calib === undefined && parsed.values.scores === undefined) throw new UsageError('prune: --calib DATA (or --scores SCORES.json from merge) is required to choose layers by score (or name them with --remove-layers)\nRun `shortgpt-native prune --help` for usage.');
      return runPruneByScore(modelDir, parsed, io);
    }
    // --remove-layers computes nothing, so --device/--threads are ignored, but a bad value is still a usage error.
    checkDeviceOption('prune', parsed);
    const out = stringOption(parsed, 'out');
    if (out === undefined || out === '') throw new UsageError('prune: --out OUT_DIR is required\nRun `shortgpt-native prune --help` for usage.');
    const layers = intListOption('prune', parsed, 'remove-layers');
    if (layers === undefined) throw new UsageError('prune: --remove-layers LIST is required (0-based layer indices, e.g. 3,5 or 21-29), or choose layers by score with --calib DATA and --remove N or --ratio R\nRun `shortgpt-native prune --help` for usage.');
    const model = sourceDirFor(modelDir, out, parsed);
    const ckpt = await openCheckpoint(model);
    return removeChosenLayers(ckpt, layers, out, { force: flag(parsed, 'force'), json: flag(parsed, 'json'), quiet: flag(parsed, 'quiet'), layersOption: '--remove-layers' }, io);
  },
};
