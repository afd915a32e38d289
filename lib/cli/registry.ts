/** Every subcommand, in the order the top-level --help lists them. */
import type { Command } from './command';
import { doctorCommand } from './commands/doctor';

export const commands: Command[] = [doctorCommand];
