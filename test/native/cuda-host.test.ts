/**
 * The CUDA backend's host-side logic, tested without a GPU: native/tests/host_tests.cc checks the
 * attention kernel choice (tensor cores only where the block's shared memory fits the device's
 * opt-in limit: head_dim 128 falls back to SIMT on 99 KiB parts such as sm_86/89/120) and the
 * resource owners that keep a CudaSession constructor that throws half-way from leaking.
 * CMake builds it beside the addon (`npm run compile:native`), with or without nvcc.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/paths';

const binary = path.join(repoRoot, 'build', 'Release', 'shortgpt_host_tests');

test('host_tests: attention kernel selection and RAII owners pass every check', () => {
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run \`npm run compile:native\``);
  const r = spawnSync(binary, [], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stdout).not.toContain('FAIL');
  expect(r.stdout).toMatch(/host_tests: (\d+) of \1 checks passed/);
  // Guards against a binary that silently ran nothing.
  const passed = Number(/host_tests: (\d+) of/.exec(r.stdout)?.[1]);
  expect(passed).toBeGreaterThanOrEqual(50);
  expect(r.status).toBe(0);
});
