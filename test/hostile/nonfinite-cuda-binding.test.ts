/**
 * The CUDA backend's non-finite handling, host side, without a GPU: the addon's CUDA binding
 * runs against the fake libshortgpt_cuda.so (native/tests/fake_cuda_backend.cc), told by
 * SHORTGPT_FAKE_CUDA_NONFINITE to report NaN statistics (what native/cuda/ops.cu's statistics
 * kernel now gives for a NaN/Inf token) and a NaN at one index of the residual stream. The
 * binding must refuse the layer, naming layer, sequence, position and hidden index, and refuse
 * NaN perplexity sums. The device kernel itself is compiled here but not run (no GPU).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { bindingPath, loadBinding } from '../../lib/engine/binding';
import { embeddingRef, finalNormRef, layerTensorRefs, lmHeadRef, nativeModelSpec } from '../../lib/engine/modelSpec';
import { repoRoot, stories260kDir } from '../helpers/paths';

const fakeLib = path.join(repoRoot, 'build', 'Release', 'libfakecuda_for_tests.so');
const H = 64;

function runChild(job: unknown, nonFiniteAt: number, op: 'forward' | 'nll'): { stderr: string; status: number | null } {
  loadBinding();
  const addon = bindingPath() as string;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-fakecuda-nan-'));
  try {
    const jobFile = path.join(dir, 'job.json');
    fs.writeFileSync(jobFile, JSON.stringify(job));
    const script = `
      const b = require(${JSON.stringify(addon)});
      const job = JSON.parse(require('fs').readFileSync(${JSON.stringify(jobFile)}, 'utf8'));
      (async () => {
        const s = new b.Session({ spec: job.spec, sequences: job.sequences.map((q) => Int32Array.from(q)), threads: 1, device: 'cuda' });
        await s.embed(job.embed);
        if (${JSON.stringify(op)} === 'forward') await s.forwardLayer(3, job.layer);
        else await s.nll(job.norm, job.head);
        await s.dispose();
      })().catch((e) => { process.stderr.write(String(e.code) + ': ' + e.message); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, SHORTGPT_CUDA_LIB: fakeLib, SHORTGPT_FAKE_CUDA_LOG: path.join(dir, 'log.txt'), SHORTGPT_FAKE_CUDA_NONFINITE: String(nonFiniteAt) },
    });
    return { stderr: r.stderr, status: r.status };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('CUDA binding: NaN from the device stops the run (fake CUDA library, no GPU)', () => {
  let job: Record<string, unknown>;
  beforeAll(async () => {
    if (!fs.existsSync(fakeLib)) throw new Error(`${fakeLib} is missing: run \`npm run compile:native\``);
    const ckpt = await openCheckpoint(stories260kDir);
    job = {
      spec: nativeModelSpec(ckpt.config), embed: embeddingRef(ckpt), layer: layerTensorRefs(ckpt, 3),
      norm: finalNormRef(ckpt), head: lmHeadRef(ckpt), sequences: [[1, 5, 9, 13], [1, 7, 11]],
    };
  });

  it('a NaN layer is located on the host: layer, sequence, position, hidden index', () => {
    // Sequence 1 starts at row 4: its position 2 is row 6.
    const r = runChild(job, 6 * H + 5, 'forward');
    expect(r.stderr).toMatch(/^ERR_NONFINITE_ACTIVATION: layer 3: the layer's output \(the residual stream\) became non-finite \(NaN\) at sequence 1, position 2, hidden index 5 /);
    expect(r.status).toBe(1);
  });

  it('NaN perplexity sums are refused', () => {
    const r = runChild(job, 0, 'nll');
    expect(r.stderr).toMatch(/^ERR_NONFINITE_LOGITS: .*lm_head/);
    expect(r.status).toBe(1);
  });

  it('finite sums pass', () => {
    const r = runChild(job, -1, 'forward');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
