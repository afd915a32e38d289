/** `shortgpt-native score MODEL --tokens FILE`: every layer's Block Influence, ranked. */
import { openCheckpoint } from '../../checkpoint/checkpoint';
import { readTokenFile } from '../../data/tokenFile';
import type { LayerScores } from '../../scoring/scoreLayers';
import { flag, intOption, noExtraPositionals, parseCommandLine, requirePositional, stringOption } from '../args';
import type { Command } from '../command';
import { BUNDLED_MODEL, BUNDLED_TEXT, examplesBlock, shownPath } from '../examples';
import { UsageError } from '../../errors';
import { plural } from '../../util/format';
import { CALIB_OPTION_HELP, CALIB_OPTION_SPEC } from '../calibOptions';
import { scoreCalibration, scoreTokenSequences } from '../dataCommands';
import { ENGINE_OPTION_HELP, ENGINE_OPTION_SPEC, resolveCommandEngine } from '../engineOption';
import { MODEL_OPTION_SPEC, modelOptionHelp, modelOptions } from '../modelOption';
import { parseShardRequest, runShardScore, SHARD_OPTION_HELP, SHARD_OPTION_SPEC } from '../workersPartial';
import { runWorkers, workerRequest } from '../workers';
import { layerScoreOf } from '../../scoring/merge';
import { calibrationWarnings } from '../../prune/calibration';
import { bootstrapScores } from '../../scoring/bootstrap';
import { BOOTSTRAP_OPTION_HELP, BOOTSTRAP_OPTION_SPEC, bootstrapLines, bootstrapSamples, refuseBootstrapOn } from '../bootstrapOption';

export interface ScoreRow {
  layer: number;
  bi: number;
  angular: number;
  relmag: number;
  /** 1 = lowest Block Influence (the first candidate for removal). */
  rank: number;
  tokens: number;
  /** Tokens whose input or output state had zero norm: their undefined cosine counted as 0.5. */
  zeroNormTokens: number;
}

/** Rank by BI ascending; ties keep the lower layer index first. */
export function rankRows(scores: LayerScores): ScoreRow[] {
  const order = [...scores.layers].sort((a, b) => a.blockInfluence - b.blockInfluence || a.layer - b.layer);
  const rank = new Map(order.map((l, i) => [l.layer, i + 1]));
  return scores.layers.map((l) => ({
    layer: l.layer,
    bi: l.blockInfluence,
    angular: l.angularDistance,
    relmag: l.relativeMagnitude,
    rank: rank.get(l.layer)!,
    tokens: l.tokens,
    zeroNormTokens: l.nanCount,
  }));
}

export const scoreCommand: Command = {
  name: 'score',
  summary: 'score every layer of a model by Block Influence on calibration tokens',
  get help() {
    return `${examplesBlock([
      { what: 'runnable now: every layer of the bundled model scored on 32 windows of the bundled text', command: `score ${shownPath(BUNDLED_MODEL)} --calib ${shownPath(BUNDLED_TEXT)} --samples 32` },
      { what: 'every layer of your model on 256 windows of 256 tokens of your text, ranked by Block Influence', command: 'score ./Llama-3.1-8B --calib pg19.txt --samples 256' },
      { what: 'a folder of .txt, .jsonl and .parquet files; the scores as one JSON document', command: 'score ./Llama-3.1-8B --calib ./calibration-data --json' },
      { what: 'token ids you made yourself: a JSON array of arrays, e.g. [[1, 403, 407], [1, 378]]', command: 'score ./Llama-3.1-8B --tokens tokens.json' },
    ])}Usage: shortgpt-native score MODEL (--tokens FILE | --calib DATA...) [--json]
         [--bootstrap N [--seed S]] [--device auto|cpu|cuda] [--threads N]

Runs the token sequences in FILE through the checkpoint in MODEL one layer at a time and
prints, per layer, the Block Influence (BI = 1 - mean cosine between the layer's input and
output hidden states), the mean angular distance, the mean relative magnitude
||out - in|| / ||out||, and the rank by BI (1 = least influential, the first to remove).

Options:
  --tokens FILE   a JSON array of arrays of token ids, e.g. [[1, 403, 407], [1, 378]]
  --calib DATA    calibration data, tokenized with the model's tokenizer and cut into windows
                  (repeatable; see Data options)
  --quiet         no progress or device line on stderr
  --json          print one JSON document:
                  {"model": ..., "tokens": N, "sequences": N, "device": "cpu"|"cuda",
                   "layers": [{"layer", "bi", "angular", "relmag", "rank", "zeroNormTokens"}],
                   "warnings": [...]} (e.g. too few calibration windows); zeroNormTokens:
                  tokens whose hidden state was exactly zero, so their undefined cosine
                  counted as 0.5 (NaN/Inf states stop the run with ERR_NONFINITE_*);
                  with --bootstrap also "bootstrap": {"samples", "seed", "windows", "metric",
                  "confidence", "layers": [{"layer", "estimate", "low", "high"}]}
${BOOTSTRAP_OPTION_HELP}
${modelOptionHelp(18)}
  -h, --help

${ENGINE_OPTION_HELP}

${SHARD_OPTION_HELP}

${CALIB_OPTION_HELP}`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('score', argv, {
      tokens: { type: 'string' }, calib: { type: 'string', multiple: true }, quiet: { type: 'boolean' },
      json: { type: 'boolean' }, ...SHARD_OPTION_SPEC, ...BOOTSTRAP_OPTION_SPEC, ...ENGINE_OPTION_SPEC, ...CALIB_OPTION_SPEC, ...MODEL_OPTION_SPEC,
    });
    const modelDir = requirePositional('score', parsed, 0, 'MODEL (a checkpoint directory)');
    noExtraPositionals('score', parsed, 1);
    const tokensFile = stringOption(parsed, 'tokens');
    const calib = parsed.values.calib !== undefined;
    if ((tokensFile === undefined) === !calib) throw new UsageError('score: give exactly one of --tokens FILE or --calib DATA');
    const json = flag(parsed, 'json');
    const samples = bootstrapSamples('score', parsed);
    // Sharded scoring (lib/cli/workersPartial.ts) and local workers (lib/cli/workers.ts) take over here.
    const shardRequest = parseShardRequest('score', parsed);
    const workerPlan = workerRequest('score', parsed);
    if ((shardRequest || workerPlan) && samples !== undefined) throw new UsageError('score: --bootstrap resamples one process\'s windows; it cannot be combined with --shard, --partial or --workers');
    if (workerPlan && shardRequest) throw new UsageError('score: --device cuda:LIST and --workers run their own shards; give one GPU (--device cuda) with --shard/--partial');
    if (workerPlan && !calib) throw new UsageError('score: --workers and --device cuda:LIST split calibration windows: give --calib DATA');
    // An explicit --device cuda with --bootstrap is refused on any machine, before CUDA is probed.
    if (/^cuda(:|$)/.test(stringOption(parsed, 'device') ?? '')) refuseBootstrapOn('score', 'cuda', samples);
    // Workers resolve their own device; --device cuda:0,1 is theirs, not an engine device here.
    const { engine } = workerPlan ? { engine: { device: workerPlan.workers[0].device } } : resolveCommandEngine('score', parsed, io, { silent: json || flag(parsed, 'quiet') });
    refuseBootstrapOn('score', engine.device, samples);
    const ckpt = await openCheckpoint(modelDir, modelOptions('score', parsed));
    if (shardRequest) return runShardScore('score', ckpt, parsed, io, engine, shardRequest);
    let scores: LayerScores;
    let warnings: string[] = [];
    if (workerPlan) {
      const merged = await runWorkers('score', parsed, workerPlan, ckpt.dir, io, json || flag(parsed, 'quiet'));
      scores = { model: merged.model, tokens: merged.tokens, sequences: merged.sequences, layers: merged.sums.layers.map(layerScoreOf) };
      warnings = calibrationWarnings(merged.provenance.data.summary);
    } else if (tokensFile !== undefined) {
      scores = await scoreTokenSequences(ckpt, await readTokenFile(tokensFile, ckpt.config.vocabSize), parsed, io, engine);
    } else {
      ({ result: scores, warnings } = await scoreCalibration('score', ckpt, parsed, io, engine));
    }
    const rows = rankRows(scores);
    const seed = samples === undefined ? undefined : (intOption('score', parsed, 'seed', { min: 0 }) ?? 0);
    const bootstrap = samples === undefined ? undefined : bootstrapScores(scores.layers, { samples, seed });
    if (json) {
      const doc = { model: scores.model, tokens: scores.tokens, sequences: scores.sequences, device: engine.device, layers: rows.map(({ layer, bi, angular, relmag, rank, zeroNormTokens }) => ({ layer, bi, angular, relmag, rank, zeroNormTokens })), warnings, ...(bootstrap ? { bootstrap } : {}) };
      io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    } else {
      const lines = [
        `${scores.model}: ${plural(scores.tokens, 'token')} in ${plural(scores.sequences, 'sequence')}`,
        `${'layer'.padStart(5)}  ${'BI'.padStart(10)}  ${'angular'.padStart(10)}  ${'relmag'.padStart(10)}  ${'rank'.padStart(4)}`,
        ...rows.map((r) => `${String(r.layer).padStart(5)}  ${r.bi.toFixed(6).padStart(10)}  ${r.angular.toFixed(6).padStart(10)}  ${r.relmag.toFixed(6).padStart(10)}  ${String(r.rank).padStart(4)}`),
      ];
      const zero = rows.filter((r) => r.zeroNormTokens > 0);
      if (zero.length > 0) {
        lines.push(`zero-norm hidden states (cosine undefined, counted as 0.5): ${zero.map((r) => `layer ${r.layer}: ${plural(r.zeroNormTokens, 'token')}`).join(', ')}`);
      }
      if (bootstrap) lines.push(...bootstrapLines(bootstrap));
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  },
};
