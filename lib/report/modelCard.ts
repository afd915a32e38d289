/**
 * The pruned checkpoint's model card (README.md). The source's card is kept, since its license,
 * usage notes and citations still apply, but it describes the original (its layer count,
 * parameters, benchmark numbers), so a section saying what was removed, how it was chosen and
 * what it cost goes on top of it, after the YAML front matter, which the Hub reads only when
 * it comes first. A source without a card gets a new one.
 */
import * as path from 'node:path';
import { MERGEKIT_YAML, formatLayerList } from './cuts';
import { frontMatterWith, splitFrontMatter } from './frontMatter';
import { REPORT_MD } from './markdown';
import { boundChoiceText } from './qualitySection';
import { healedText } from './healedText';
import { METRIC_NAMES, type PruneReport, type Strategy } from './types';
import { formatCount } from '../util/format';

/** The model card's file name, as the Hugging Face Hub reads it. */
export const MODEL_CARD = 'README.md';

/** What the card says about the cut (the rewrite fills it; the prune report adds the why). */
export interface CardFacts {
  /** The source checkpoint directory (absolute). */
  source: string;
  architecture: string;
  sourceLayers: number;
  removed: readonly number[];
  kept: readonly number[];
  parameters?: { before: number; after: number };
  /** The prune report when the layers were chosen by score: metric, reasons, perplexity. */
  report?: PruneReport;
  /** e.g. "shortgpt-native 0.1.0". */
  tool: string;
  /** Files written beside the weights that the card should point to (besides mergekit.yaml). */
  files?: readonly string[];
  /** Source names of tensors whose values were replaced (--heal's patched down_proj); none: pure deletion. */
  replaced?: readonly string[];
}

/** `org/name` for a Hugging Face cache snapshot (`.../models--org--name/snapshots/<hash>`). */
export function hubIdOfPath(dir: string): string | undefined {
  const m = /(?:^|[/\\])models--([^/\\]+)[/\\]snapshots[/\\][^/\\]+[/\\]?$/.exec(dir);
  // Hub repository names may not contain '--', so the cache folder name splits unambiguously.
  return m ? m[1].split('--').join('/') : undefined;
}

const STRATEGY_TEXT: Record<Strategy, string> = {
  'one-shot': 'one-shot (the lowest-scored layers removed at once, as in ShortGPT)',
  iterative: 'iterative (the lowest-scored layer removed, the shortened model re-scored, repeated)',
  block: 'block (the contiguous layers whose input and output are closest, Gromov et al. 2024)',
};

const int = formatCount;
const signedPct = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`;
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;

/** The section that says what this checkpoint is: markdown lines, no trailing blank line. */
export function pruningSection(f: CardFacts, hadCard: boolean): string[] {
  const hubId = hubIdOfPath(f.source);
  const name = hubId ?? path.basename(f.source);
  const sourceRef = hubId ? `[${hubId}](https://huggingface.co/${hubId})` : code(name);
  const k = f.removed.length;
  const n = f.sourceLayers;
  const r = f.report;
  const lines = [
    `# ${name}, pruned: ${n} → ${f.kept.length} layers`,
    '',
    `This model is ${sourceRef} with ${k} of its ${n} decoder layers removed, made with ${f.tool} ` +
      '(ShortGPT layer pruning, Men et al. 2024, [arXiv:2403.03853](https://arxiv.org/abs/2403.03853)). ' +
      (f.replaced?.length
        ? `Healed without training: ${f.replaced.map(code).join(', ')} (source names) hold a least-squares linear patch for the cut folded into their weights ` +
          '(ReplaceMe, [arXiv:2505.02819](https://arxiv.org/abs/2505.02819)); every other kept tensor is the source\'s, byte for byte, and the layers after a removed one were renumbered.'
        : 'No weight was changed: every kept tensor is the source\'s, byte for byte, and the layers after a removed one were renumbered.'),
    '',
    `- **Source:** ${code(f.source)} (${f.architecture}, ${n} layers)`,
    `- **Removed:** layer${k === 1 ? '' : 's'} ${formatLayerList(f.removed)} (0-based; ${k} of ${n}, ${((100 * k) / n).toFixed(1)}%)`,
  ];
  if (r) {
    lines.push(
      `- **Chosen by:** ${METRIC_NAMES[r.metric]}, strategy ${STRATEGY_TEXT[r.strategy]}, on ${r.calibration.description} from ${r.calibration.sources.map(code).join(', ')}${boundChoiceText(r)}`,
    );
    for (const l of r.layers) if (l.removed && l.reason) lines.push(`  - layer ${l.layer}: ${l.reason}`);
    const p = r.perplexity;
    lines.push(
      p
        ? `- **Perplexity** on ${p.data.map(code).join(', ')} (${int(p.predictions)} predictions): ${p.before.toFixed(3)} before → ${p.after.toFixed(3)} after (${signedPct(p.rise)}${healedText(r.heal?.perplexity, 3)})`
        : '- **Perplexity:** not measured (prune with `--eval DATA` to have it here)',
    );
  } else {
    lines.push(
      '- **Chosen by:** named explicitly (not scored)',
      '- **Perplexity:** not measured (`shortgpt-native eval DIR --data TEXT` on the source and on this model gives it before and after)',
    );
  }
  if (f.parameters) {
    const { before, after } = f.parameters;
    lines.push(`- **Parameters:** ${int(before)} → ${int(after)} (${signedPct(after / before - 1)})`);
  }
  lines.push(`- **Layer mapping** (source → this model): ${f.kept.map((old, neu) => `${old}→${neu}`).join(', ')}`);
  const files = [
    f.replaced?.length
      ? `${code(MERGEKIT_YAML)} (the same cut for mergekit, \`mergekit-yaml ${MERGEKIT_YAML} OUTPUT_DIR\`, without the healing patch: plain deletion)`
      : `${code(MERGEKIT_YAML)} (rebuilds this model from the source: \`mergekit-yaml ${MERGEKIT_YAML} OUTPUT_DIR\`)`,
    `${code('shortgpt.json')} (what was removed, for tools)`,
    ...(f.files ?? []).includes(REPORT_MD) ? [`${code(REPORT_MD)} (every layer's scores and why these layers)`] : [],
  ];
  lines.push(`- **Files:** ${files.join(', ')}`);
  lines.push('');
  lines.push(
    hadCard
      ? '> The source\'s model card follows, unchanged. It describes the model before pruning: its layer and parameter counts, evaluation results and usage notes are the original\'s, not this model\'s.'
      : '> The source had no model card.',
  );
  return lines;
}

/**
 * The pruned checkpoint's README.md: the source's card (`original`, null when there is none)
 * with the pruning section on top of its body. Front matter stays first, every line of it kept;
 * `tags` (and `base_model`, for a hub snapshot) are added only where the card has none.
 */
export function renderModelCard(original: string | null, f: CardFacts): string {
  const hubId = hubIdOfPath(f.source);
  const keys: Array<readonly [string, readonly string[]]> = [
    ...(hubId ? [['base_model', [`base_model: ${hubId}`]] as const] : []),
    ['tags', ['tags:', '- shortgpt-native', '- pruned']],
  ];
  const parts = original === null ? null : splitFrontMatter(original);
  const eol = parts?.eol ?? (original?.includes('\r\n') ? '\r\n' : '\n');
  const section = pruningSection(f, original !== null).join(eol);
  if (parts) {
    const body = parts.body.replace(/^(\r?\n)+/, '');
    return `${frontMatterWith(parts, keys)}${eol}${section}${eol}${eol}---${eol}${eol}${body}`;
  }
  const front = frontMatterWith({ open: `---${eol}`, yaml: '', close: `---${eol}`, body: '', eol }, keys);
  if (original === null) return `${front}${eol}${section}${eol}`;
  return `${front}${eol}${section}${eol}${eol}---${eol}${eol}${original.replace(/^\uFEFF/, '').replace(/^(\r?\n)+/, '')}`;
}
