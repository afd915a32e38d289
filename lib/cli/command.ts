/** What every subcommand provides to the dispatcher in lib/cli/main.ts. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface Command {
  name: string;
  /** One line for the top-level --help. */
  summary: string;
  /** The full text printed by `shortgpt-native <name> --help`. */
  help: string;
  /** Returns the process exit status: 0 success, 1 runtime failure (2 is raised as UsageError). */
  run(argv: string[], io: CliIO): Promise<number>;
}
