/** prune's --heal / --heal-ridge (lib/prune/heal.ts): parsed as usage errors (exit 2). */
import { openCheckpoint } from '../checkpoint/checkpoint';
import { ShortGptError, UsageError } from '../errors';
import { parseHealMethod, parseHealRidge, type HealMethod } from '../prune/heal';
import { healAndRemoveLayers } from '../prune/healRemoval';
import { planLayerRemoval } from '../prune/layerPlan';
import { signalExitCode, trapInterrupts } from '../prune/signals';
import { flag, stringOption, type Parsed } from './args';
import { CALIB_OPTION_SPEC, listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { resolveCommandEngine } from './engineOption';

export const HEAL_OPTION_HELP = `  --heal lstsq           fit a least-squares linear patch per removed block on --calib (ReplaceMe),
                         folded into the down_proj before the cut: same names and shapes (CPU
                         only; one extra partial pass; with --remove-layers it heals that cut)
  --heal-ridge A         ridge alpha added to MᵀM's diagonal (default 0)`;

export function healCliOptions(command: string, parsed: Parsed): { heal?: HealMethod; healRidge?: number } {
  const method = stringOption(parsed, 'heal');
  const ridge = stringOption(parsed, 'heal-ridge');
  try {
    const heal = method === undefined ? undefined : parseHealMethod(method);
    const healRidge = ridge === undefined ? undefined : parseHealRidge(ridge);
    if (healRidge !== undefined && heal !== 'lstsq') throw new Error('--heal-ridge needs --heal lstsq');
    // Said before --device cuda is probed (a machine without CUDA would give another error).
    if (heal === 'lstsq' && stringOption(parsed, 'device') === 'cuda') throw new Error('--heal lstsq needs --device cpu (the CUDA backend does not capture MLP outputs)');
    return { ...(heal !== undefined ? { heal } : {}), ...(healRidge !== undefined ? { healRidge } : {}) };
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}

/** --heal needs the CPU backend (it captures MLP outputs): a usage error before any work. */
export function refuseHealOn(command: string, device: 'cpu' | 'cuda', heal: HealMethod | undefined): void {
  if (heal === 'lstsq' && device === 'cuda') throw new UsageError(`${command}: --heal lstsq needs --device cpu (the CUDA backend does not capture MLP outputs)`);
}

/** Options that may go with --remove-layers when --heal is given: the calibration data and its windowing. */
export const HEAL_WITH_NAMED_LAYERS = new Set(['heal', 'heal-ridge', 'calib', 'precision', ...Object.keys(CALIB_OPTION_SPEC)]);

/** `prune MODEL --remove-layers LIST --heal lstsq --calib DATA --out OUT`: heal the named cut and write it. */
export async function runHealedRemoval(model: string, layers: number[], out: string, parsed: Parsed, io: CliIO): Promise<number> {
  const cmd = 'prune';
  const heal = healCliOptions(cmd, parsed);
  const calib = listOption(parsed, 'calib');
  if (calib === undefined) throw new UsageError('prune: --heal lstsq needs --calib DATA (the calibration text the patch is fitted on)');
  const calibOptions = parseCalibOptions(cmd, parsed);
  const json = flag(parsed, 'json');
  const quiet = flag(parsed, 'quiet');
  const { engine } = resolveCommandEngine(cmd, parsed, io, { silent: json || quiet });
  refuseHealOn(cmd, engine.device, heal.heal);
  const ckpt = await openCheckpoint(model);
  try {
    planLayerRemoval(ckpt.config.numHiddenLayers, layers, '--remove-layers');
  } catch (e) {
    if (e instanceof ShortGptError) throw new UsageError(`prune: ${e.message}`);
    throw e;
  }
  const trap = trapInterrupts();
  const note = (m: string): void => {
    if (!quiet) io.stderr.write(`${m}\n`);
  };
  try {
    const r = await healAndRemoveLayers(ckpt, layers, out, { ...calibOptions, calib, healRidge: heal.healRidge, engine, force: flag(parsed, 'force'), signal: trap.signal, onNote: note });
    io.stdout.write(json ? `${JSON.stringify(r, null, 2)}\n` : `pruned ${r.sourceDir} (${r.sourceLayers} layers) -> ${r.outDir} (${r.numHiddenLayers} layers), removed ${r.removedLayers.join(', ')}; healed (heal.json): ${r.heal.blocks.map((b) => (b.patchedLayer === null ? `${b.removed[0]}..${b.removed[1] - 1} plain` : `${b.removed[0]}..${b.removed[1] - 1} -> ${b.tensor}`)).join('; ')}\n`);
    return 0;
  } catch (e) {
    const sig = trap.received();
    if (sig !== undefined && e instanceof ShortGptError && e.code === 'ERR_ABORTED') {
      io.stderr.write(`shortgpt-native: prune interrupted by ${sig}; nothing was written to ${out}\n`);
      return signalExitCode(sig);
    }
    throw e;
  } finally {
    trap.dispose();
  }
}
