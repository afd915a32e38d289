'use strict';
// Runs one engine job in this process and prints its outcome as JSON, for test/native/prefetch.test.ts.
// The test starts it with SHORTGPT_PREFETCH / SHORTGPT_PREFETCH_DELAY_MS in its real
// environment (jest's process.env never reaches the addon's getenv).
// argv[2]: a JSON job file:
//   {"kind": "score", "dir", "sequences", "threads", "precision"?}
//       -> {"scores": scoreLayers(...), "perplexity": perplexity(...)}
//   {"kind": "scoreEach", "dirs", "sequences", "threads", "precision"?}
//       -> {"results": [{"scores", "perplexity"} per dir]} (test/engine/bf16-streamed.test.ts)
//   {"kind": "steps", "dir", "sequences", "threads", "precision"?, "steps": [{"layer", "next"?, "abortAfterBatches"?}]}
//       -> {"steps": [{"stats"} | {"code", "message", "seconds"}], "disposeSeconds"}
//       each step runs forwardLayer(layer, its refs, {next: refs of layer `next`}); abortAfterBatches
//       aborts the step's signal once that many progress reports have arrived. Steps stop at the
//       first error; the session is then disposed (timed: dispose joins the prefetcher).
require('../../prune/helpers/tsRequire.js');
const fs = require('node:fs');
const { openCheckpoint } = require('../../../lib/checkpoint/checkpoint.ts');
const { embeddingRef, layerTensorRefs, nativeModelSpec } = require('../../../lib/engine/modelSpec.ts');
const { EngineSession } = require('../../../lib/engine/session.ts');
const { scoreLayers } = require('../../../lib/scoring/scoreLayers.ts');
const { perplexity } = require('../../../lib/eval/perplexity.ts');

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const engine = job.precision ? { threads: job.threads, precision: job.precision } : { threads: job.threads };
  if (job.kind === 'score') {
    const scores = await scoreLayers(job.dir, job.sequences, engine);
    const ppl = await perplexity(job.dir, job.sequences, engine);
    return { scores, perplexity: ppl };
  }
  if (job.kind === 'scoreEach') {
    const results = [];
    for (const dir of job.dirs) {
      results.push({ scores: await scoreLayers(dir, job.sequences, engine), perplexity: await perplexity(dir, job.sequences, engine) });
    }
    return { results };
  }
  const ckpt = await openCheckpoint(job.dir);
  const session = EngineSession.create(nativeModelSpec(ckpt.config), job.sequences, engine);
  const steps = [];
  try {
    await session.embed(embeddingRef(ckpt));
    for (const step of job.steps) {
      const controller = new AbortController();
      let batches = 0;
      const onProgress = () => {
        batches += 1;
        if (step.abortAfterBatches !== undefined && batches >= step.abortAfterBatches) controller.abort();
      };
      const next = step.next === undefined || step.next === null ? undefined : layerTensorRefs(ckpt, step.next);
      const t0 = process.hrtime.bigint();
      try {
        const stats = await session.forwardLayer(step.layer, layerTensorRefs(ckpt, step.layer), { signal: controller.signal, onProgress, next });
        steps.push({ stats });
      } catch (e) {
        steps.push({ code: String(e.code), message: e.message, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
        break;
      }
    }
  } finally {
    const t0 = process.hrtime.bigint();
    await session.dispose();
    steps.disposeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  return { steps, disposeSeconds: steps.disposeSeconds };
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out)),
  (e) => {
    process.stderr.write(`${e.code ?? ''} ${e.stack ?? e}`);
    process.exit(1);
  },
);
