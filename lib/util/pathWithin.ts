import * as path from 'node:path';

/** Whether `child` is `parent` or lies under it (both absolute, already resolved as the caller needs). */
export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
