/**
 * What the architecture suites (test/engine/arch-*.test.ts) share: a scratch directory for the
 * file's checkpoints (generated with a config.json edit, as generateCase does), a resolved
 * config of the generator's config.json after an edit, and the ShortGptError a call refuses with.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatedConfigJson, type GenerateOptions } from '../../scripts/generate-checkpoint';
import { resolveConfig } from '../../lib/checkpoint/config';
import { ShortGptError } from '../../lib/errors';
import { generateCase } from './checkpointCases';

type ConfigEdit = (c: Record<string, unknown>) => void;

export interface ScratchCheckpoints {
  /** The directory (made in beforeAll, removed in afterAll). */
  dir(): string;
  /** Generates `opts` as `dir()/name`, then applies `edit` to its config.json; returns the path. */
  generate(name: string, opts: GenerateOptions, edit?: ConfigEdit): Promise<string>;
}

/** Registers the beforeAll/afterAll of a scratch directory under the OS temp dir (`prefix` + random suffix). */
export function scratchCheckpoints(prefix: string): ScratchCheckpoints {
  let root = '';
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    dir: () => root,
    async generate(name, opts, edit) {
      const dir = path.join(root, name);
      await generateCase(dir, { opts, edit });
      return dir;
    },
  };
}

/** The resolved config of the config.json the generator writes for `opts`, after `edit`. */
export function generatedConfig(opts: GenerateOptions, edit: ConfigEdit = () => undefined) {
  const raw = generatedConfigJson(opts);
  edit(raw);
  return resolveConfig(raw, 'config.json');
}

/** The ShortGptError `fn` throws (any other error is rethrown; none fails the test). */
export function refusal(fn: () => unknown): ShortGptError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ShortGptError) return e;
    throw e;
  }
  throw new Error('expected a ShortGptError');
}
