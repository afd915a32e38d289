/**
 * A real YAML parser for checking the YAML we write (mergekit.yaml, model-card front matter):
 * js-yaml, which jest itself installs (through @istanbuljs/load-nyc-config), so the check is
 * independent of our own writer and needs no dependency of its own.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const jsYaml = require('js-yaml') as { load(text: string): unknown };

export function parseYaml(text: string): unknown {
  return jsYaml.load(text);
}

/** The YAML between a model card's opening `---` line and the next `---` line. */
export function frontMatterOf(card: string): string {
  const m = /^\uFEFF?---\r?\n([\s\S]*?)^---\r?$/m.exec(card);
  if (!m || m.index !== 0) throw new Error(`no front matter at the start of:\n${card.slice(0, 200)}`);
  return m[1];
}
