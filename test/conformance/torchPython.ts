/**
 * Finds the Python the conformance suite runs transformers in: $SHORTGPT_TORCH_PYTHON, else the
 * cached virtual environment .ci/run provisions (CONFORMANCE_VENV). A clone without either skips
 * the suite; with SHORTGPT_REQUIRE_CONFORMANCE=1 (set by .ci/run) it fails instead, so CI can never
 * pass without having run it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const TORCH_PYTHON_ENV = 'SHORTGPT_TORCH_PYTHON';
export const REQUIRE_ENV = 'SHORTGPT_REQUIRE_CONFORMANCE';

/** Where .ci/run keeps the venv: outside the clone, so CI runs on one machine share it. Keep in step with .ci/run. */
export const CONFORMANCE_VENV = path.join(
  process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'shortgpt-native', 'venv-torch213-tf518',
);

export type TorchPython =
  | { found: true; python: string; torch: string; transformers: string }
  | { found: false; reason: string };

// Reads the installed versions without importing torch (which takes seconds).
const PROBE = 'import importlib.metadata as m, json; print(json.dumps({"torch": m.version("torch"), "transformers": m.version("transformers")}))';

export function findTorchPython(env: NodeJS.ProcessEnv = process.env): TorchPython {
  const fromEnv = env[TORCH_PYTHON_ENV];
  const python = fromEnv || path.join(CONFORMANCE_VENV, 'bin', 'python');
  const where = fromEnv ? `${TORCH_PYTHON_ENV}=${fromEnv}` : `no ${TORCH_PYTHON_ENV}, and ${python}`;
  if (!fromEnv && !fs.existsSync(python)) return { found: false, reason: `${where} does not exist (scripts/conformance-venv.sh creates it)` };
  const probe = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
  if (probe.error || probe.status !== 0) {
    const why = probe.error ? probe.error.message : (probe.stderr.trim().split('\n').pop() ?? `exit ${probe.status}`);
    return { found: false, reason: `${where}: no torch + transformers there (${why})` };
  }
  const v = JSON.parse(probe.stdout) as { torch: string; transformers: string };
  // The script uses transformers 5's API (rope_parameters, output_loading_info as a dict).
  if (Number(v.transformers.split('.')[0]) < 5) {
    return { found: false, reason: `${where} has transformers ${v.transformers}; the suite needs 5 or later` };
  }
  return { found: true, python, ...v };
}
