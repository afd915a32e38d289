/**
 * The public surface, as a user of the package sees it: what the main entry and the
 * `shortgpt-native/advanced` subpath export (a decision recorded here, so growing it is
 * deliberate), that internals are exported by neither, and that every export of both, and every
 * field of the main entry's option and result types, carries a doc comment (what shows up in an
 * editor's hover). Read with the TypeScript compiler's own symbol tables, from lib/ sources.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { repoRoot } from '../helpers/paths';

const MAIN_VALUES = [
  'ShortGptError', 'UsageError', 'packageVersion',
  'prune', 'openCheckpoint', 'loadTokenizer', 'scoreLayers', 'toMetricScores', 'chooseLayers',
  'perplexity', 'rewriteCheckpoint', 'inspectCheckpoint', 'formatInspectReport', 'doctorReport',
  // Judging a cut: how stable it is, how far the pruned model drifts from the original, task accuracy.
  'bootstrapScores', 'compareModels', 'evaluateTasks', 'loadTaskFile',
];
const MAIN_TYPES = [
  'PruneOptions', 'PruneResult', 'PrunePlan', 'PruneProgress', 'RemovalRequest', 'CalibrationOptions',
  'EngineOptions', 'StrategyResult', 'BatchedPerplexity', 'Metric', 'Strategy', 'MetricScores', 'PruneReport',
  'Checkpoint', 'ModelConfig', 'TensorInfo', 'TokenSequences', 'Tokenizer', 'LayerScore', 'LayerScores', 'ScoreOptions',
  'ScoreProgress', 'ChooseOptions', 'LayerChoice', 'PerplexityOptions', 'PerplexityResult', 'RewriteOptions',
  'RewriteResult', 'RewriteProgress', 'InspectReport', 'DoctorReport',
  'HealMethod', 'HealReport', 'BootstrapOptions', 'BootstrapResult', 'LayerInterval',
  'CompareOptions', 'CompareProgress', 'ComparisonResult', 'ComparisonStats', 'WindowComparison',
  'TaskEvalOptions', 'TaskItem', 'TaskItemResult', 'TaskResult', 'TaskSpec',
];
/** The jobs' option and result types: each field is documented too (units, defaults). */
const DOCUMENTED_FIELDS = [
  'PruneOptions', 'PruneResult', 'PrunePlan', 'RemovalRequest', 'CalibrationOptions', 'EngineOptions',
  'LayerScore', 'LayerScores', 'ScoreOptions', 'ScoreProgress', 'ChooseOptions', 'LayerChoice',
  'PerplexityOptions', 'PerplexityResult', 'RewriteOptions', 'RewriteResult', 'InspectReport', 'DoctorReport',
  'HealReport', 'BootstrapOptions', 'BootstrapResult', 'LayerInterval', 'CompareOptions', 'CompareProgress',
  'ComparisonResult', 'ComparisonStats', 'WindowComparison', 'TaskEvalOptions', 'TaskItem', 'TaskItemResult',
  'TaskResult', 'TaskSpec',
];
/** Implementation details: exported by neither entry. */
const PRIVATE = [
  'f16BitsToF32', 'f32ToF16Bits', 'bf16BitsToF32', 'f32ToBf16Bits', 'encodeSafetensorsHeader', 'HeaderEntry',
  'decodeToF32', 'layerTensorSpecs', 'globalTensorSpecs', 'layerFlops', 'gemmFlops', 'attentionFlops',
  'loadBinding', 'packageRoot',
];

const entry = (name: string): string => path.join(repoRoot, 'lib', `${name}.ts`);
let checker: ts.TypeChecker;
let program: ts.Program;

beforeAll(() => {
  program = ts.createProgram([entry('index'), entry('advanced')], {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true, noEmit: true, skipLibCheck: true, esModuleInterop: true, resolveJsonModule: true, types: ['node'],
  });
  checker = program.getTypeChecker();
});

function exportsOf(name: string): Map<string, ts.Symbol> {
  const source = program.getSourceFile(entry(name));
  if (!source) throw new Error(`no source for lib/${name}.ts`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`lib/${name}.ts is not a module`);
  const out = new Map<string, ts.Symbol>();
  for (const s of checker.getExportsOfModule(moduleSymbol)) {
    out.set(s.getName(), s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  }
  return out;
}

const isValue = (s: ts.Symbol): boolean =>
  (s.flags & (ts.SymbolFlags.Value | ts.SymbolFlags.Class)) !== 0;
const documented = (s: ts.Symbol): boolean =>
  ts.displayPartsToString(s.getDocumentationComment(checker)).trim().length > 0;

describe('main entry (shortgpt-native)', () => {
  it('exports the job, its steps, their option and result types and the error classes, nothing else', () => {
    const exported = exportsOf('index');
    const values = [...exported].filter(([, s]) => isValue(s)).map(([n]) => n);
    const types = [...exported].filter(([, s]) => !isValue(s)).map(([n]) => n);
    expect(values.sort()).toEqual([...MAIN_VALUES].sort());
    expect(types.sort()).toEqual([...MAIN_TYPES].sort());
  });

  it('documents every export', () => {
    const missing = [...exportsOf('index')].filter(([, s]) => !documented(s)).map(([n]) => n);
    expect(missing).toEqual([]);
  });

  it('documents every field of the option and result types', () => {
    const exported = exportsOf('index');
    const missing: string[] = [];
    for (const name of DOCUMENTED_FIELDS) {
      const symbol = exported.get(name);
      if (!symbol) throw new Error(`${name} is not exported`);
      for (const p of checker.getDeclaredTypeOfSymbol(symbol).getProperties()) {
        if (!documented(p)) missing.push(`${name}.${p.getName()}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('shortgpt-native/advanced', () => {
  it('documents every export and shares none with the main entry', () => {
    const main = exportsOf('index');
    const advanced = exportsOf('advanced');
    expect(advanced.size).toBeGreaterThan(20);
    expect([...advanced].filter(([, s]) => !documented(s)).map(([n]) => n)).toEqual([]);
    // Types the job's results are made of may appear in both; functions and constants live in one place.
    expect([...advanced].filter(([n, s]) => isValue(s) && main.has(n)).map(([n]) => n)).toEqual([]);
  });
});

it('keeps internals private', () => {
  const exported = new Set([...exportsOf('index').keys(), ...exportsOf('advanced').keys()]);
  expect(PRIVATE.filter((n) => exported.has(n))).toEqual([]);
});

it('maps both entries (and nothing deeper) in package.json exports, with types first', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    exports: Record<string, string | Record<string, string>>; main: string; types: string;
  };
  expect(Object.keys(pkg.exports).sort()).toEqual(['.', './advanced', './package.json']);
  expect(pkg.exports['.']).toEqual({ types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
  expect(pkg.exports['./advanced']).toEqual({ types: './dist/lib/advanced.d.ts', default: './dist/lib/advanced.js' });
  expect(Object.keys(pkg.exports['.'])[0]).toBe('types');
  expect(`./${pkg.main}`).toBe('./dist/lib/index.js');
  expect(`./${pkg.types}`).toBe('./dist/lib/index.d.ts');
});
