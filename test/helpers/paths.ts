import * as path from 'node:path';

/**
 * Where tests find the model, text and golden values: all inside the repository, so that a bare
 * clone (nothing beside it) runs `npm test`. The model and TinyStories text are the bundled demo
 * assets; the golden values are fixtures that `npm run golden` regenerates.
 */
export const repoRoot = path.resolve(__dirname, '..', '..');
export const stories260kDir = path.join(repoRoot, 'assets', 'stories260k');
/** 189 TinyStories validation stories, each followed by a `<|endoftext|>` line. */
export const tinyStoriesText = path.join(repoRoot, 'assets', 'data', 'tinystories-valid.txt');
/** General English prose (UTF-8, public domain): see test/fixtures/data/README.md. */
export const sherlockText = path.join(repoRoot, 'test', 'fixtures', 'data', 'sherlock-holmes-excerpt.txt');
export const goldenDir = path.join(repoRoot, 'test', 'fixtures', 'golden');
