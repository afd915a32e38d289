/**
 * Multiple-choice task items from JSONL: the native shape {"context", "choices", "gold"}, or the
 * common exports mapped the way lm-evaluation-harness 0.4.13's task configs build them
 * (lm_eval/tasks/{hellaswag,arc,piqa,mmlu}), so an item here is the harness's
 * (doc_to_text, doc_to_choice, doc_to_target) of the same document.
 */
import { ShortGptError } from '../errors';

/** One item: the context, its choices and the index of the right one. */
export interface TaskItem {
  /** The text the choices continue (the harness's doc_to_text). */
  context: string;
  /** The candidate continuations, each scored as " " + choice (doc_to_choice). */
  choices: string[];
  /** Index of the right choice (doc_to_target). */
  gold: number;
}

export const TASK_FORMATS = ['native', 'hellaswag', 'arc', 'piqa', 'mmlu'] as const;
export type TaskFormat = (typeof TASK_FORMATS)[number];

type Doc = Record<string, unknown>;

/** What a line of each format must hold, for error messages. */
export const FORMAT_FIELDS: Record<TaskFormat, string> = {
  native: '{"context": string, "choices": [string, ...], "gold": integer}',
  hellaswag: '{"ctx" (or "ctx_a" and "ctx_b"), "endings": [string, ...], "label": integer, optional "activity_label"}',
  arc: '{"question": string, "choices": {"text": [...], "label": [...]}, "answerKey": string}',
  piqa: '{"goal": string, "sol1": string, "sol2": string, "label": 0 or 1}',
  mmlu: '{"question": string, "choices": [4 strings], "answer": 0..3 (or "A".."D"), optional "subject"}',
};

class FieldError extends Error {}

function str(doc: Doc, key: string): string {
  const v = doc[key];
  if (typeof v !== 'string') throw new FieldError(`"${key}" must be a string, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return v;
}

function strings(v: unknown, key: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((c) => typeof c === 'string')) {
    throw new FieldError(`"${key}" must be a non-empty array of strings`);
  }
  return v as string[];
}

function index(v: unknown, key: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new FieldError(`"${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Python's str.capitalize(): the first character upper case, the rest lower case. */
function capitalize(s: string): string {
  return s.length ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
}

/** lm_eval/tasks/hellaswag/utils.py preprocess. */
function hellaswagPreprocess(text: string): string {
  return text.trim().replace(/ \[title\]/g, '. ').replace(/\[.*?\]/g, '').replace(/ {2}/g, ' ');
}

const MAPPERS: Record<TaskFormat, (doc: Doc) => TaskItem> = {
  native: (d) => ({ context: str(d, 'context'), choices: strings(d.choices, 'choices'), gold: index(d.gold, 'gold') }),
  // process_docs: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()).
  hellaswag: (d) => {
    const ctx = d.ctx_a !== undefined || d.ctx_b !== undefined ? `${str(d, 'ctx_a')} ${capitalize(str(d, 'ctx_b'))}` : str(d, 'ctx');
    const query = d.activity_label !== undefined ? `${str(d, 'activity_label')}: ${ctx}` : ctx;
    return { context: hellaswagPreprocess(query), choices: strings(d.endings, 'endings').map(hellaswagPreprocess), gold: index(d.label, 'label') };
  },
  // arc_easy.yaml / arc_challenge.yaml: "Question: {{question}}\nAnswer:", choices.text, choices.label.index(answerKey).
  arc: (d) => {
    const c = d.choices as Doc | undefined;
    if (typeof c !== 'object' || c === null) throw new FieldError('"choices" must be an object {"text": [...], "label": [...]}');
    const text = strings(c.text, 'choices.text');
    const labels = strings(c.label, 'choices.label');
    const key = str(d, 'answerKey');
    const gold = labels.indexOf(key);
    if (gold < 0) throw new FieldError(`"answerKey" ${JSON.stringify(key)} is not one of choices.label ${JSON.stringify(labels)}`);
    return { context: `Question: ${str(d, 'question')}\nAnswer:`, choices: text, gold };
  },
  // piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
  piqa: (d) => ({ context: `Question: ${str(d, 'goal')}\nAnswer:`, choices: [str(d, 'sol1'), str(d, 'sol2')], gold: index(d.label, 'label') }),
  // mmlu/default/_default_template_yaml, zero-shot: the subject's description, then the question
  // with lettered choices; the choices scored are the letters.
  mmlu: (d) => {
    const choices = strings(d.choices, 'choices');
    if (choices.length !== 4) throw new FieldError(`"choices" must hold 4 strings, got ${choices.length}`);
    const answer = typeof d.answer === 'string' && /^[A-D]$/.test(d.answer) ? 'ABCD'.indexOf(d.answer) : index(d.answer, 'answer');
    const subject = d.subject === undefined ? undefined : str(d, 'subject');
    const description = subject ? `The following are multiple choice questions (with answers) about ${subject.replace(/_/g, ' ')}.\n\n` : '';
    const body = `${str(d, 'question').trim()}\nA. ${choices[0]}\nB. ${choices[1]}\nC. ${choices[2]}\nD. ${choices[3]}\nAnswer:`;
    return { context: description + body, choices: ['A', 'B', 'C', 'D'], gold: answer };
  },
};

/** Checks a --task-format value. */
export function parseTaskFormat(value: string): TaskFormat {
  if ((TASK_FORMATS as readonly string[]).includes(value)) return value as TaskFormat;
  throw new ShortGptError('ERR_TASK_FORMAT', `unknown task format '${value}': expected one of ${TASK_FORMATS.join(', ')}`);
}

/**
 * One JSONL line's document as an item of `format`; `where` ("FILE line N") names it in errors
 * (ERR_TASK_ITEM).
 */
export function taskItem(doc: unknown, format: TaskFormat, where: string): TaskItem {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ShortGptError('ERR_TASK_ITEM', `${where}: expected a JSON object ${FORMAT_FIELDS[format]}`);
  }
  let item: TaskItem;
  try {
    item = MAPPERS[format](doc as Doc);
  } catch (e) {
    if (e instanceof FieldError) throw new ShortGptError('ERR_TASK_ITEM', `${where}: ${e.message} (format ${format}: ${FORMAT_FIELDS[format]})`);
    throw e;
  }
  if (item.gold >= item.choices.length) {
    throw new ShortGptError('ERR_TASK_ITEM', `${where}: the gold index ${item.gold} is out of range for ${item.choices.length} choices`);
  }
  return item;
}
