/** Every subcommand, in the order the top-level --help lists them. */
import type { Command } from './command';
import { benchCommand } from './commands/bench';
import { demoCommand } from './commands/demo';
import { doctorCommand } from './commands/doctor';
import { evalCommand } from './commands/eval';
import { inspectCommand } from './commands/inspect';
import { pruneCommand } from './commands/prune';
import { scoreCommand } from './commands/score';
import { mergeCommand } from './commands/merge';

export const commands: Command[] = [doctorCommand, inspectCommand, pruneCommand, scoreCommand, mergeCommand, evalCommand, demoCommand, benchCommand];
