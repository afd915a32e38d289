/**
 * Errors a user can cause or meet. Each carries a stable `code` (tests and callers switch on
 * it, never on the message) and a message that names the file, tensor or option at fault.
 *
 * @example
 * try {
 *   await prune(model, options);
 * } catch (e) {
 *   if (e instanceof ShortGptError && e.code === 'ERR_OUTPUT_EXISTS') console.error('choose another out, or pass force');
 *   else throw e;
 * }
 */
export class ShortGptError extends Error {
  /** Stable machine-readable code, e.g. ERR_OUTPUT_EXISTS, ERR_NATIVE_MISSING, ERR_USAGE. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShortGptError';
    this.code = code;
  }
}

/** A bad command line: the CLI prints the message and exits with status 2. */
export class UsageError extends ShortGptError {
  constructor(message: string) {
    super('ERR_USAGE', message);
    this.name = 'UsageError';
  }
}

export function isShortGptError(e: unknown): e is ShortGptError {
  return e instanceof ShortGptError;
}
