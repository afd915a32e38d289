/**
 * Error codes that mean the command line asked for something this model cannot give (a layer it
 * does not have, more layers than it has, a window longer than it allows, an output inside
 * it). The library raises them as ShortGptError because it only learns the model's shape after
 * opening it; for the CLI they are usage errors, so they exit with status 2, not 1.
 */
import { ShortGptError } from '../errors';

export const USAGE_ERROR_CODES: ReadonlySet<string> = new Set([
  'ERR_USAGE',
  'ERR_REMOVE_OPTIONS',
  'ERR_REMOVE_COUNT',
  'ERR_KEEP_RANGE',
  'ERR_LAYER_INDEX',
  'ERR_REMOVE_ALL_LAYERS',
  'ERR_NO_LAYERS_GIVEN',
  'ERR_METRIC',
  'ERR_STRATEGY',
  'ERR_SEQ_LEN',
  'ERR_OUTPUT_MISSING',
  'ERR_OUTPUT_IN_SOURCE',
  'ERR_OUTPUT_CONTAINS_SOURCE',
  'ERR_REVISION',
  'ERR_REVISION_UNUSED',
]);

export function isUsageError(e: unknown): boolean {
  return e instanceof ShortGptError && USAGE_ERROR_CODES.has(e.code);
}
