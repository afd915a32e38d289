/** `shortgpt-native eval MODEL --tokens FILE [--skip-layers a,b]`: perplexity. */
import { openCheckpoint } from '../../checkpoint/checkpoint';
import { readTokenFile } from '../../data/tokenFile';
import { UsageError } from '../../errors';
import { perplexity } from '../../eval/perplexity';
import { plural } from '../../util/format';
import { flag, intListOption, noExtraPositionals, parseCommandLine, requirePositional, stringOption } from '../args';
import { CALIB_OPTION_HELP, CALIB_OPTION_SPEC } from '../calibOptions';
import type { Command } from '../command';
import { BUNDLED_MODEL, BUNDLED_TEXT, examplesBlock, shownPath } from '../examples';
import { evalData } from '../dataCommands';
import { ENGINE_OPTION_HELP, ENGINE_OPTION_SPEC, resolveCommandEngine } from '../engineOption';
import { MODEL_OPTION_SPEC, modelOptionHelp, modelOptions } from '../modelOption';
import { comparisonJson, comparisonText, cpuForComparison, runEvalCompare } from '../evalCompare';
import { loadTaskOptions, runTaskEval, TASK_OPTION_HELP, TASK_OPTION_SPEC, tasksGiven } from '../taskEval';

const TASKS_NEED_CPU = 'the CUDA backend has no token log-probability pass yet';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'perplexity of a model on calibration tokens, optionally with layers skipped',
  get help() {
    return `${examplesBlock([
      { what: 'runnable now: the bundled model with layer 2 skipped, i.e. the perplexity it would have with layer 2 removed', command: `eval ${shownPath(BUNDLED_MODEL)} --data ${shownPath(BUNDLED_TEXT)} --samples 48 --skip-layers 2` },
      { what: "your model's perplexity on held-out text", command: 'eval ./Llama-3.1-8B --data wiki.txt' },
      { what: 'what removing layers 24-27 would cost, before writing anything', command: 'eval ./Llama-3.1-8B --data wiki.txt --skip-layers 24-27' },
      { what: 'the model that prune wrote, on the same text', command: 'eval ./Llama-3.1-8B-pruned --data wiki.txt' },
    ])}Usage: shortgpt-native eval MODEL (--tokens FILE | --data DATA...) [--skip-layers a,b] [--json]
         [--device auto|cpu|cuda] [--threads N]
       shortgpt-native eval PRUNED --compare ORIGINAL (--tokens FILE | --data DATA...)
         [--skip-layers a,b] [--compare-skip-layers a,b] [--json]
       shortgpt-native eval MODEL --tasks FILE.jsonl [--tasks ...] [--task-format F]
         [--skip-layers a,b] [--json]

Prints the perplexity exp(mean next-token negative log-likelihood) of the checkpoint in MODEL
on the token sequences in FILE (a sequence of T tokens predicts T-1). With --skip-layers the
named layers are skipped at run time (their input passes through unchanged), which gives the
perplexity the model would have with those layers removed.

Options:
  --tokens FILE        a JSON array of arrays of token ids
  --data DATA          evaluation data, tokenized with the model's tokenizer and cut into
                       windows (repeatable; see Data options)
  --quiet              no progress or device line on stderr
  --skip-layers LIST   layer indices to skip, e.g. 3,5 or 20-28
  --compare ORIGINAL   paired comparison on the same windows (CPU only): both models' perplexity,
                       KL(ORIGINAL || MODEL) of the next-token distributions (mean, p95, nats) and
                       top-1 agreement (how often both models' likeliest next token is the same),
                       pooled and per window; identical models give KL 0 and agreement 1 exactly
  --compare-skip-layers LIST
                       layers of ORIGINAL to skip at run time
  --json               print one JSON document:
                       {"perplexity": ..., "tokens": N, "device": "cpu"|"cuda", ...};
                       with --tasks: {"tasks": [{"name", "items", "acc", "accStderr",
                       "accNorm", "accNormStderr", "results": [{"loglikelihoods", "pred",
                       "predNorm", "gold"}]}]};
                       with --compare: {"perplexity": {"reference", "candidate"}, "kl": {"mean",
                       "p95"}, "top1Agreement", "predictions", ..., "perWindow": [...]}
${TASK_OPTION_HELP}
${modelOptionHelp(23)}
  -h, --help

${ENGINE_OPTION_HELP}

${CALIB_OPTION_HELP}`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('eval', argv, {
      tokens: { type: 'string' }, data: { type: 'string', multiple: true }, quiet: { type: 'boolean' },
      'skip-layers': { type: 'string' }, json: { type: 'boolean' }, compare: { type: 'string' }, 'compare-skip-layers': { type: 'string' }, ...TASK_OPTION_SPEC, ...ENGINE_OPTION_SPEC, ...CALIB_OPTION_SPEC, ...MODEL_OPTION_SPEC,
    });
    const modelDir = requirePositional('eval', parsed, 0, 'MODEL (a checkpoint directory)');
    noExtraPositionals('eval', parsed, 1);
    const tokensFile = stringOption(parsed, 'tokens');
    const data = parsed.values.data !== undefined;
    const tasks = tasksGiven(parsed);
    if ((tokensFile !== undefined ? 1 : 0) + (data ? 1 : 0) + (tasks ? 1 : 0) !== 1) {
      throw new UsageError('eval: give exactly one of --tokens FILE, --data DATA or --tasks FILE');
    }
    if (!tasks && parsed.values['task-format'] !== undefined) throw new UsageError('eval: --task-format applies to --tasks files only');
    const skipLayers = intListOption('eval', parsed, 'skip-layers') ?? [];
    const json = flag(parsed, 'json');
    const ckpt = await openCheckpoint(modelDir, modelOptions('eval', parsed));
    const n = ckpt.config.numHiddenLayers;
    const bad = skipLayers.find((l) => l >= n);
    if (bad !== undefined) throw new UsageError(`eval: --skip-layers: layer ${bad} does not exist; ${ckpt.dir} has layers 0..${n - 1}`);
    const compareDir = stringOption(parsed, 'compare');
    // An explicit --device cuda with a CPU-only pass is refused on any machine, before CUDA is probed.
    if (/^cuda(:|$)/.test(stringOption(parsed, 'device') ?? '')) {
      if (compareDir !== undefined) cpuForComparison('eval', '--compare', { device: 'cuda' as const }, parsed, io);
      if (tasks) cpuForComparison('eval', '--tasks', { device: 'cuda' as const }, parsed, io, TASKS_NEED_CPU);
    }
    const { engine } = resolveCommandEngine('eval', parsed, io, { silent: json || flag(parsed, 'quiet') });
    if (compareDir === undefined && parsed.values['compare-skip-layers'] !== undefined) throw new UsageError('eval: --compare-skip-layers needs --compare ORIGINAL');
    if (compareDir !== undefined) {
      if (tasks) throw new UsageError('eval: --compare takes --tokens FILE or --data DATA, not --tasks');
      const reference = await openCheckpoint(compareDir, modelOptions('eval', parsed));
      const referenceSkipLayers = intListOption('eval', parsed, 'compare-skip-layers') ?? [];
      const c = await runEvalCompare({ candidate: ckpt, reference, skipLayers, referenceSkipLayers, tokensFile, engine }, parsed, io);
      io.stdout.write(json ? `${JSON.stringify(comparisonJson(c, c.device), null, 2)}\n` : comparisonText(c));
      return 0;
    }
    if (tasks) {
      const taskEngine = cpuForComparison('eval', '--tasks', engine, parsed, io, TASKS_NEED_CPU);
      return runTaskEval(ckpt, await loadTaskOptions('eval', parsed), parsed, io, taskEngine, skipLayers);
    }
    const r = tokensFile !== undefined
      ? await perplexity(ckpt, await readTokenFile(tokensFile, ckpt.config.vocabSize), { ...engine, skipLayers })
      : (await evalData('eval', ckpt, parsed, io, engine, skipLayers)).result;
    if (json) {
      const doc = { perplexity: r.perplexity, tokens: r.tokens, predictions: r.predictions, meanNll: r.meanNll, skipLayers: r.skipLayers, model: ckpt.dir, device: engine.device };
      io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    } else {
      const skipped = r.skipLayers.length ? `, layers ${r.skipLayers.join(',')} skipped` : '';
      io.stdout.write(`perplexity ${r.perplexity.toFixed(6)}  (mean NLL ${r.meanNll.toFixed(6)} over ${plural(r.predictions, 'prediction')}, ${plural(r.tokens, 'token')}${skipped})\n`);
    }
    return 0;
  },
};
