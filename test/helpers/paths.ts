import * as path from 'node:path';

/** The repository root and the ../shared folder beside it (models, data, golden values). */
export const repoRoot = path.resolve(__dirname, '..', '..');
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const stories260kDir = path.join(sharedDir, 'models', 'stories260k');
