/** `eval MODEL --tasks FILE.jsonl [--tasks ...] [--task-format F]`: multiple-choice accuracy (lib/eval/tasks.ts). */
import type { Checkpoint } from '../checkpoint/types';
import type { EngineOptions } from '../engine/engineOptions';
import { ShortGptError, UsageError } from '../errors';
import { evaluateTasks, loadTaskFile, type TaskResult, type TaskSpec } from '../eval/tasks';
import { parseTaskFormat, TASK_FORMATS } from '../eval/taskFormats';
import { flag, stringOption, type OptionSpec, type Parsed } from './args';
import { listOption } from './calibOptions';
import type { CliIO } from './command';
import { progressLine } from './progress';

export const TASK_OPTION_SPEC: OptionSpec = { tasks: { type: 'string', multiple: true }, 'task-format': { type: 'string' } };

export const TASK_OPTION_HELP = `  --tasks FILE         multiple-choice accuracy instead of perplexity: a JSONL task file
                       (repeatable), one item per line {"context", "choices", "gold"}, scored
                       as lm-evaluation-harness 0.4 scores a multiple_choice task (acc,
                       acc_norm and their standard errors); e.g. assets/tasks/*.jsonl
  --task-format F      the files' format: ${TASK_FORMATS.join(', ')} (default native;
                       see the README's "Multiple-choice tasks")`;

/** Whether --tasks was given. */
export function tasksGiven(parsed: Parsed): boolean {
  return parsed.values.tasks !== undefined;
}

/** Loads every --tasks file (a bad format is a usage error; a bad file a runtime one). */
export async function loadTaskOptions(command: string, parsed: Parsed): Promise<TaskSpec[]> {
  const formatText = stringOption(parsed, 'task-format');
  let format: string | undefined;
  if (formatText !== undefined) {
    try {
      format = parseTaskFormat(formatText);
    } catch (e) {
      throw new UsageError(`${command}: --task-format: ${(e as ShortGptError).message}`);
    }
  }
  const files = listOption(parsed, 'tasks') ?? [];
  const specs: TaskSpec[] = [];
  for (const f of files) specs.push(await loadTaskFile(f, { format }));
  return specs;
}

export function taskTable(results: readonly TaskResult[]): string {
  const w = Math.max(4, ...results.map((r) => r.name.length));
  const lines = [`${'task'.padEnd(w)}  ${'items'.padStart(5)}  ${'acc'.padStart(15)}  ${'acc_norm'.padStart(15)}`];
  const cell = (v: number, se: number): string => `${v.toFixed(4)} ± ${Number.isFinite(se) ? se.toFixed(4) : 'n/a'}`;
  for (const r of results) lines.push(`${r.name.padEnd(w)}  ${String(r.items).padStart(5)}  ${cell(r.acc, r.accStderr).padStart(15)}  ${cell(r.accNorm, r.accNormStderr).padStart(15)}`);
  return `${lines.join('\n')}\n`;
}

/** Runs the tasks and prints the table, or {"tasks": [...]} with --json. */
export async function runTaskEval(ckpt: Checkpoint, tasks: TaskSpec[], parsed: Parsed, io: CliIO, engine: EngineOptions, skipLayers: number[]): Promise<number> {
  const json = flag(parsed, 'json');
  const progress = progressLine(io, flag(parsed, 'quiet'));
  let results: TaskResult[];
  try {
    results = await evaluateTasks(ckpt, tasks, {
      ...engine,
      skipLayers,
      onProgress: (p) => progress.update({ phase: 'tasks', layer: -1, layers: ckpt.config.numHiddenLayers, windowsDone: p.sequencesDone, windowsTotal: p.sequencesTotal, workDone: p.sequencesDone, workTotal: p.sequencesTotal }),
    });
  } finally {
    progress.clear();
  }
  if (json) {
    const doc = {
      model: ckpt.dir,
      device: engine.device,
      skipLayers: [...new Set(skipLayers)].sort((a, b) => a - b),
      tasks: results.map((r) => ({ ...r, accStderr: nullIfNaN(r.accStderr), accNormStderr: nullIfNaN(r.accNormStderr), file: tasks.find((t) => t.name === r.name)?.file })),
    };
    io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    io.stdout.write(taskTable(results));
  }
  return 0;
}

/** JSON has no NaN: a one-item task's standard error is null. */
function nullIfNaN(v: number): number | null {
  return Number.isNaN(v) ? null : v;
}
