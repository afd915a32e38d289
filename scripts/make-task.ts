/**
 * Builds the bundled multiple-choice task assets/tasks/tinystories-next-sentence.jsonl: "which
 * sentence comes next?" with the true next sentence of a TinyStories story and 3 sentences drawn
 * from other stories, in the native task format {"context", "choices", "gold"}.
 *
 *   node -r ./test/prune/helpers/tsRequire.js scripts/make-task.ts [--check]
 *
 * Deterministic (mulberry32, SEED below): rerunning rewrites the same bytes; --check only
 * compares and exits 1 on a difference. Source: the last HELD_OUT stories of the bundled
 * assets/data/tinystories-valid.txt (the only TinyStories text in the repository). Calibration
 * that must not see them can use the stories before (assets/tasks/README.md says how).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mulberry32 } from '../lib/util/prng';

const SEED = 20240312;
/** Stories at the end of the file the task is made from. */
const HELD_OUT = 60;
/** Items per story at most (different positions in the story). */
const PER_STORY = 3;
/** Sentences of context before the one to predict, at most. */
const CONTEXT_SENTENCES = 3;
const MAX_SENTENCE_CHARS = 160;

const root = path.resolve(__dirname, '..');
const source = path.join(root, 'assets/data/tinystories-valid.txt');
const target = path.join(root, 'assets/tasks/tinystories-next-sentence.jsonl');

function stories(text: string): string[] {
  return text.split(/^<\|endoftext\|>$/m).map((s) => s.replace(/\s+/g, ' ').trim()).filter((s) => s.length > 0);
}

/** Sentences: split after . ! or ? (and a closing quote) followed by a space. */
function sentences(story: string): string[] {
  return story.split(/(?<=[.!?]["”]?) +/).map((s) => s.trim()).filter((s) => s.length > 0);
}

function main(): number {
  const all = stories(fs.readFileSync(source, 'utf8'));
  const first = all.length - HELD_OUT;
  const held = all.slice(first).map(sentences);
  const random = mulberry32(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const lines: string[] = [];
  held.forEach((sents, s) => {
    // Positions with CONTEXT_SENTENCES sentences before them and a sentence of sensible length.
    const positions = sents.map((_, i) => i).filter((i) => i >= CONTEXT_SENTENCES && sents[i].length <= MAX_SENTENCE_CHARS);
    const chosen: number[] = [];
    while (chosen.length < PER_STORY && chosen.length < positions.length) {
      const i = pick(positions);
      if (!chosen.includes(i)) chosen.push(i);
    }
    for (const i of chosen.sort((a, b) => a - b)) {
      const context = sents.slice(i - CONTEXT_SENTENCES, i).join(' ');
      const distractors: string[] = [];
      while (distractors.length < 3) {
        const other = pick(held.map((_, k) => k).filter((k) => k !== s));
        // Not a story's opening sentence ("Once upon a time" would give it away).
        const cand = pick(held[other].slice(1)).trim();
        if (cand.length <= MAX_SENTENCE_CHARS && cand !== sents[i] && !distractors.includes(cand)) distractors.push(cand);
      }
      const gold = Math.floor(random() * 4);
      const choices = [...distractors];
      choices.splice(gold, 0, sents[i]);
      lines.push(JSON.stringify({ context, choices, gold, story: first + s }));
    }
  });
  const out = `${lines.join('\n')}\n`;
  if (process.argv.includes('--check')) {
    const same = fs.existsSync(target) && fs.readFileSync(target, 'utf8') === out;
    process.stdout.write(same ? `${target}: up to date (${lines.length} items)\n` : `${target}: differs from what this script makes\n`);
    return same ? 0 : 1;
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, out);
  process.stdout.write(`wrote ${target}: ${lines.length} items from stories ${first}..${all.length - 1} of ${source}\n`);
  return 0;
}

process.exitCode = main();
