/**
 * `prune MODEL --remove-layers LIST --heal lstsq --calib DATA`: the named cut, healed. The layers
 * are known up front, so nothing is scored: the calibration windows run once, up to the last
 * cut's layer (lib/prune/heal.ts), and the rewrite replaces each patched down_proj.
 */
import type { Checkpoint } from '../checkpoint/types';
import type { EngineOptions } from '../engine/engineOptions';
import { describeCalibration } from '../data/windows';
import { loadWindows, type CalibrationOptions } from './calibration';
import { checkHealArchitecture, checkHealDevice, healCut, type HealReport } from './heal';
import { planLayerRemoval } from './layerPlan';
import * as path from 'node:path';
import { checkOutputPlacement, checkOutputVacancy } from './atomicOutput';
import { acquireOutputLock } from './outputLock';
import { rewriteHoldingLock, type RewriteOptions, type RewriteResult } from './rewrite';

export interface HealRemovalOptions extends CalibrationOptions, Omit<RewriteOptions, 'removeLayers' | 'replaceTensors'> {
  calib: string | readonly string[];
  healRidge?: number;
  engine?: EngineOptions;
}

/** Heals and writes the cut; `heal` is what report.json's `heal` holds for a scored prune. */
export async function healAndRemoveLayers(ckpt: Checkpoint, layers: readonly number[], outDir: string, opts: HealRemovalOptions): Promise<RewriteResult & { heal: HealReport }> {
  planLayerRemoval(ckpt.config.numHiddenLayers, layers, '--remove-layers');
  checkHealDevice(opts.engine);
  checkHealArchitecture(ckpt);
  // OUT is locked and checked before the calibration pass, not after it.
  const outAbs = path.resolve(outDir);
  checkOutputPlacement(ckpt.dir, outAbs);
  const lock = await acquireOutputLock(outAbs);
  let failed = true;
  try {
    for (const n of lock.notes) opts.onNote?.(n);
    await checkOutputVacancy(outAbs, opts.force === true);
    const result = await healLocked(ckpt, layers, outAbs, opts);
    failed = false;
    return result;
  } finally {
    lock.release(failed);
  }
}

async function healLocked(ckpt: Checkpoint, layers: readonly number[], outDir: string, opts: HealRemovalOptions): Promise<RewriteResult & { heal: HealReport }> {
  const calib = await loadWindows(ckpt, opts.calib, opts, 'calibration data');
  opts.onNote?.(`calibration: ${describeCalibration(calib.summary)}`);
  const healed = await healCut(ckpt, calib.batches, layers, opts.healRidge ?? 0, { engine: opts.engine, signal: opts.signal });
  for (const b of healed.report.blocks) {
    opts.onNote?.(b.patchedLayer === null
      ? `heal: layers ${b.removed[0]}..${b.removed[1] - 1} start at layer 0: no layer before the cut to patch, left plain`
      : `heal: layers ${b.removed[0]}..${b.removed[1] - 1} folded into ${b.tensor} (relative residual ${b.relativeResidual?.toPrecision(4)}, plain ${b.plainResidual?.toPrecision(4)})`);
  }
  const patched = healed.report.blocks.flatMap((b) => (b.patchedLayer === null ? [] : [b.patchedLayer]));
  const result = await rewriteHoldingLock(ckpt, outDir, {
    ...opts,
    removeLayers: layers,
    replaceTensors: healed.replace,
    extraMetadata: { ...(opts.extraMetadata ?? {}), 'shortgpt.heal': `lstsq alpha=${healed.report.alpha} patched=${patched.join(',')}` },
    extraFiles: { ...(opts.extraFiles ?? {}), 'heal.json': `${JSON.stringify(healed.report, null, 2)}\n` },
  });
  return { ...result, heal: healed.report };
}
