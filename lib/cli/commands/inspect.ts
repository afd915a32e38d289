/** `shortgpt-native inspect MODEL_DIR [--json]`: a checkpoint's shape, dtypes and sizes. */
import { formatInspectReport, inspectCheckpoint } from '../../checkpoint/inspect';
import { printable } from '../../util/printable';
import { flag, noExtraPositionals, parseCommandLine, requirePositional } from '../args';
import type { Command } from '../command';
import { BUNDLED_MODEL, examplesBlock, shownPath } from '../examples';
import { MODEL_OPTION_SPEC, modelOptionHelp, modelOptions } from '../modelOption';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show a checkpoint\'s architecture, layers, heads, dtypes, parameters and size',
  get help() {
    return `${examplesBlock([
      { what: "runnable now: the bundled 5-layer model's architecture, layers, heads, dtypes, parameters", command: `inspect ${shownPath(BUNDLED_MODEL)}` },
      { what: 'a model folder downloaded from the Hugging Face hub (config.json and *.safetensors)', command: 'inspect ./Llama-3.1-8B' },
      { what: 'a model in the local Hugging Face cache, by hub id (read offline; nothing is downloaded)', command: 'inspect meta-llama/Llama-3.1-8B' },
      { what: 'the same as one JSON document, for scripts', command: 'inspect ./Llama-3.1-8B --json' },
    ])}Usage: shortgpt-native inspect MODEL_DIR [--json]

Reads MODEL_DIR (config.json plus model.safetensors, or model.safetensors.index.json and its
shards), validates every safetensors header and checks each tensor against the architecture's
table, then reports: architecture, layers, hidden size, attention and key/value heads, head_dim,
intermediate size, vocabulary, dtypes, parameters per layer and in total, bytes on disk, files,
and warnings (e.g. tensors the architecture does not use). Tensor data is not read.
Exits 1 when the checkpoint is invalid, naming the file and tensor at fault; a checkpoint whose
tensors hold more layers than num_hidden_layers is still described, with the error listed.

Options:
  --json    print one JSON document on stdout (stable camelCase field names)
${modelOptionHelp(12)}
  -h, --help`;
  },
  async run(argv, io) {
    const parsed = parseCommandLine('inspect', argv, { json: { type: 'boolean' }, ...MODEL_OPTION_SPEC });
    const dir = requirePositional('inspect', parsed, 0, 'MODEL_DIR');
    noExtraPositionals('inspect', parsed, 1);
    const report = await inspectCheckpoint(dir, modelOptions('inspect', parsed));
    io.stdout.write(flag(parsed, 'json') ? `${JSON.stringify(report, null, 2)}\n` : formatInspectReport(report));
    // Described, but unusable as it is: the same refusal score, eval and prune give, and exit 1.
    for (const e of report.errors) io.stderr.write(`shortgpt-native: error [${printable(e.replace(/: /, ']: '))}\n`);
    return report.errors.length > 0 ? 1 : 0;
  },
};
