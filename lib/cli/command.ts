/** What every subcommand provides to the dispatcher in lib/cli/main.ts. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface Command {
  name: string;
  /** One line for the top-level --help. */
  summary: string;
  /**
   * The full text printed by `shortgpt-native <name> --help` and `shortgpt-native help <name>`:
   * worked examples first (lib/cli/examples.ts), then the usage and options. May be a getter, as
   * the examples show the bundled model's path relative to the current directory.
   */
  help: string;
  /** Returns the process exit status: 0 success, 1 runtime failure (2 is raised as UsageError). */
  run(argv: string[], io: CliIO): Promise<number>;
}
