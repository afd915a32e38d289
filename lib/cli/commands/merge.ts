/** `shortgpt-native merge PARTIAL... --out SCORES.json`: the partial scores of every shard -> one SCORES file. */
import * as path from 'node:path';
import { UsageError } from '../../errors';
import { mergePartials } from '../../scoring/merge';
import { readPartialFile, writeJsonAtomic } from '../../scoring/mergeFiles';
import { plural } from '../../util/format';
import { flag, parseCommandLine, stringOption } from '../args';
import type { Command } from '../command';
import { examplesBlock } from '../examples';

export const mergeCommand: Command = {
  name: 'merge',
  summary: 'add the partial scores of every shard (score --shard I/N --partial) into one SCORES.json',
  get help() {
    return `${examplesBlock([
      { what: 'two shards of ./Llama-3.1-8B scored anywhere (score --shard 0/2 and 1/2 --partial FILE), merged', command: 'merge Llama-3.1-8B-shard-0.json Llama-3.1-8B-shard-1.json --out Llama-3.1-8B-scores.json' },
      { what: 'every partial a job array left in a folder (the shell expands the *), printed as JSON too', command: 'merge Llama-3.1-8B-partials/shard-0.json --out Llama-3.1-8B-scores.json --json' },
    ])}Usage: shortgpt-native merge PARTIAL... --out SCORES.json [--json] [--quiet]

Checks that the partial files belong together (the same model by config.json and safetensors
header hashes, the same calibration data, tokenizer and windowing, the same engine mode and
shard count N, every shard 0..N-1 exactly once) and adds their sums in shard order: the merged
scores equal one process's \`score\` on the same data to rounding (1e-12 relative or better),
the same for any order the files are given in. A mismatch is an error naming the file and what
differs (ERR_MERGE_MISMATCH, exit 1); nothing is written.

SCORES.json has the shape of \`score --json\` ({"model", "tokens", "sequences", "device",
"layers": [{"layer", "bi", "angular", "relmag", "rank", "zeroNormTokens"}], "warnings"}) plus
"format", the merged "provenance", the "sums" that \`prune --scores\` chooses from
(one-shot and block strategies) and, when the shards ran --eval DATA, "perplexity".

Options:
  --out FILE    where to write the merged scores (replaced if it exists)
  --json        print the merged document on stdout too (otherwise a ranked table)
  --quiet       no summary line on stderr
  -h, --help

Then: shortgpt-native prune MODEL --scores SCORES.json --remove N --out DIR chooses and
rewrites from the merged scores without scoring again.`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('merge', argv, { out: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' } });
    const files = parsed.positionals;
    if (files.length === 0) throw new UsageError('merge: give the partial files to merge (PARTIAL..., written by score --shard I/N --partial FILE)\nRun `shortgpt-native merge --help` for usage.');
    const out = stringOption(parsed, 'out');
    if (out === undefined || out === '') throw new UsageError('merge: --out SCORES.json is required');
    if (files.some((f) => path.resolve(f) === path.resolve(out))) throw new UsageError(`merge: --out ${out} is one of the partial files`);
    const merged = mergePartials(files.map((file) => ({ file, partial: readPartialFile(file) })));
    writeJsonAtomic(out, merged);
    if (flag(parsed, 'json')) {
      io.stdout.write(`${JSON.stringify(merged, null, 2)}\n`);
    } else {
      const rows = [...merged.layers].sort((a, b) => a.rank - b.rank);
      io.stdout.write(`${[
        `${merged.model}: ${plural(merged.tokens, 'token')} in ${plural(merged.sequences, 'sequence')}, ${plural(files.length, 'shard')} merged`,
        `${'layer'.padStart(5)}  ${'BI'.padStart(10)}  ${'angular'.padStart(10)}  ${'relmag'.padStart(10)}  ${'rank'.padStart(4)}`,
        ...merged.layers.map((r) => `${String(r.layer).padStart(5)}  ${r.bi.toFixed(6).padStart(10)}  ${r.angular.toFixed(6).padStart(10)}  ${r.relmag.toFixed(6).padStart(10)}  ${String(r.rank).padStart(4)}`),
        `lowest Block Influence first: ${rows.slice(0, 8).map((r) => r.layer).join(', ')}${rows.length > 8 ? ', …' : ''}`,
      ].join('\n')}\n`);
    }
    if (!flag(parsed, 'quiet')) io.stderr.write(`wrote ${out}\n`);
    return 0;
  },
};
