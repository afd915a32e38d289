/** `shortgpt-native score MODEL --tokens FILE`: every layer's Block Influence, ranked. */
import { openCheckpoint } from '../../checkpoint/checkpoint';
import { readTokenFile } from '../../data/tokenFile';
import type { LayerScores } from '../../scoring/scoreLayers';
import { flag, noExtraPositionals, parseCommandLine, requirePositional, stringOption } from '../args';
import type { Command } from '../command';
import { BUNDLED_MODEL, BUNDLED_TEXT, examplesBlock, shownPath } from '../examples';
import { UsageError } from '../../errors';
import { plural } from '../../util/format';
import { CALIB_OPTION_HELP, CALIB_OPTION_SPEC } from '../calibOptions';
import { scoreCalibration, scoreTokenSequences } from '../dataCommands';
import { ENGINE_OPTION_HELP, ENGINE_OPTION_SPEC, resolveCommandEngine } from '../engineOption';
import { MODEL_OPTION_SPEC, modelOptionHelp, modelOptions } from '../modelOption';

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
         [--device auto|cpu|cuda] [--threads N]

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
                  counted as 0.5 (NaN/Inf states stop the run with ERR_NONFINITE_*)
${modelOptionHelp(18)}
  -h, --help

${ENGINE_OPTION_HELP}

${CALIB_OPTION_HELP}`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('score', argv, {
      tokens: { type: 'string' }, calib: { type: 'string', multiple: true }, quiet: { type: 'boolean' },
      json: { type: 'boolean' }, ...ENGINE_OPTION_SPEC, ...CALIB_OPTION_SPEC, ...MODEL_OPTION_SPEC,
    });
    const modelDir = requirePositional('score', parsed, 0, 'MODEL (a checkpoint directory)');
    noExtraPositionals('score', parsed, 1);
    const tokensFile = stringOption(parsed, 'tokens');
    const calib = parsed.values.calib !== undefined;
    if ((tokensFile === undefined) === !calib) throw new UsageError('score: give exactly one of --tokens FILE or --calib DATA');
    const json = flag(parsed, 'json');
    const { engine } = resolveCommandEngine('score', parsed, io, { silent: json || flag(parsed, 'quiet') });
    const ckpt = await openCheckpoint(modelDir, modelOptions('score', parsed));
    let scores: LayerScores;
    let warnings: string[] = [];
    if (tokensFile !== undefined) {
      scores = await scoreTokenSequences(ckpt, await readTokenFile(tokensFile, ckpt.config.vocabSize), parsed, io, engine);
    } else {
      ({ result: scores, warnings } = await scoreCalibration('score', ckpt, parsed, io, engine));
    }
    const rows = rankRows(scores);
    if (json) {
      const doc = { model: scores.model, tokens: scores.tokens, sequences: scores.sequences, device: engine.device, layers: rows.map(({ layer, bi, angular, relmag, rank, zeroNormTokens }) => ({ layer, bi, angular, relmag, rank, zeroNormTokens })), warnings };
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
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  },
};
