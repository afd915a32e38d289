/**
 * `shortgpt-native demo`: the main job on the bundled real model (stories260k, 5 layers) and
 * text (TinyStories validation stories), with no download: score every layer, remove the one of
 * lowest Block Influence, measure perplexity before and after, write the pruned model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { flag, noExtraPositionals, parseCommandLine, stringOption } from '../args';
import type { Command } from '../command';
import { ENGINE_OPTION_HELP, ENGINE_OPTION_SPEC, resolveCommandEngine } from '../engineOption';
import { BUNDLED_MODEL, BUNDLED_TEXT, examplesBlock, shellWord, shownPath } from '../examples';
import { runPruneCli } from '../pruneRun';

export const DEMO_MODEL = BUNDLED_MODEL;
export const DEMO_DATA = BUNDLED_TEXT;
/** Windows scored, and windows evaluated, out of the ~360 the text gives. */
export const DEMO_SAMPLES = 48;
/** The bundled multiple-choice task (assets/tasks/README.md), made from the text's last 60 stories. */
export const DEMO_TASK = path.join(path.dirname(BUNDLED_TEXT), '..', 'tasks', 'tinystories-next-sentence.jsonl');

export const demoCommand: Command = {
  name: 'demo',
  summary: 'prune the bundled stories260k model by Block Influence, with perplexity before and after',
  get help() {
    return `${examplesBlock([
      { what: 'the whole job on the bundled model in seconds, nothing downloaded; output in a new temp folder', command: 'demo' },
      { what: 'keep the pruned model, its report, model card and mergekit.yaml where you choose', command: 'demo --out ./stories260k-pruned' },
      { what: 'the report as one JSON document, computed on the CPU even where CUDA is usable', command: 'demo --json --device cpu' },
    ])}Usage: shortgpt-native demo [--out DIR] [--json] [--quiet] [--device auto|cpu|cuda] [--threads N]

Runs the whole job on the bundled stories260k model (a real 5-layer Llama trained on
TinyStories) and the bundled TinyStories validation text: scores every layer by Block
Influence (a seeded sample of ${DEMO_SAMPLES} windows of 256 tokens), removes the least influential
one, measures perplexity before and after (on another sample of ${DEMO_SAMPLES} windows), and
writes the pruned model (with report.json, report.md, chart.svg, mergekit.yaml and its model
card) to a new temporary directory, or to --out DIR. Takes a few seconds. A prune command that
makes the same cut is printed at the end.

Options:
  --out DIR      where to write the pruned model (default: a new directory under ${os.tmpdir()})
  --json         print the report as one JSON document on stdout, with "device": "cpu"|"cuda"
  --quiet        no progress or notes on stderr
  -h, --help

${ENGINE_OPTION_HELP}`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('demo', argv, {
      out: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, ...ENGINE_OPTION_SPEC,
    });
    noExtraPositionals('demo', parsed, 0);
    const json = flag(parsed, 'json');
    const quiet = flag(parsed, 'quiet');
    // Before the temporary directory is made: --device cuda without CUDA leaves nothing behind.
    const { engine } = resolveCommandEngine('demo', parsed, io, { silent: json || quiet });
    const out = stringOption(parsed, 'out') ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-demo-')), 'stories260k-pruned');
    const heading = `demo: pruning the bundled stories260k model on ${path.basename(DEMO_DATA)}\n`;
    const { status } = await runPruneCli(DEMO_MODEL, {
      calib: DEMO_DATA,
      // Seeded samples keep the demo to seconds on a laptop; the eval sample is a different one.
      samples: DEMO_SAMPLES,
      seed: 0,
      eval: DEMO_DATA,
      evalOptions: { samples: DEMO_SAMPLES, seed: 1 },
      remove: 1,
      metric: 'bi',
      strategy: 'one-shot',
      out,
      ...engine,
    }, io, { json, quiet, heading, jsonExtra: { device: engine.device } });
    if (status === 0 && !json) {
      // A new OUT beside the demo's, so the command runs as printed (the demo's OUT now exists).
      const again = freshPath(`${out}-again`);
      const model = shownPath(DEMO_MODEL);
      const text = shownPath(DEMO_DATA);
      io.stdout.write(`the same cut with the prune command (add --eval ${text} for perplexity on every window of the text):\n  npx shortgpt-native prune ${model} --calib ${text} --samples ${DEMO_SAMPLES} --remove 1 --out ${shellWord(again)}\n`);
      // Not run here (it would double the demo's time): the bundled multiple-choice task, before and after.
      const task = shownPath(DEMO_TASK);
      io.stdout.write(`multiple-choice accuracy (the true next sentence among 4) of the model and of the pruned one:\n  npx shortgpt-native eval ${model} --tasks ${task}\n  npx shortgpt-native eval ${shellWord(out)} --tasks ${task}\n`);
    }
    return status;
  },
};

/** `base`, or `base-2`, `base-3`, ... : the first that does not exist yet. */
function freshPath(base: string): string {
  let p = base;
  for (let i = 2; fs.existsSync(p); i++) p = `${base}-${i}`;
  return p;
}
