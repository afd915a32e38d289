/**
 * Issue 10, item 9 (the reading side), through the CLI: hostile names and values give a clear
 * error with a stable code and exit status, never a JavaScript TypeError or RangeError, and
 * nothing read from a file reaches the terminal with its control characters.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tinyStoriesText } from '../helpers/paths';
import { listTree, modelCopy, runCli, withExtraTensors } from './helpers/cliProcess';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-hostile-messages-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('config.json strings that are Object.prototype members', () => {
  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])('architecture %s is unsupported, by name', async (arch) => {
    const model = modelCopy(path.join(tmp, `arch-${arch}`), { architectures: [arch] });
    const r = await runCli(['inspect', model]);
    expect(r.stderr).toContain(`[ERR_UNSUPPORTED_ARCHITECTURE]: ${path.join(model, 'config.json')}: architecture '${arch}' is not supported`);
    expect(r.stderr).not.toMatch(/Cannot read properties|TypeError/);
    expect(r.status).toBe(1);
  });

  it('model_type constructor without architectures asks for architectures', async () => {
    const model = modelCopy(path.join(tmp, 'model-type-ctor'), { architectures: undefined, model_type: 'constructor' });
    const r = await runCli(['inspect', model]);
    expect(r.stderr).toMatch(/\[ERR_CONFIG\].*field 'architectures' is required/);
    expect(r.status).toBe(1);
  });
});

describe('numbers beyond float64 in config.json', () => {
  it.each([['num_attention_heads', '1e400'], ['rms_norm_eps', '-1e400'], ['rope_theta', '1e999']])('%s: %s names the field and the value, not null', async (field, literal) => {
    const model = modelCopy(path.join(tmp, `inf-${field}`));
    const cfgFile = path.join(model, 'config.json');
    const text = fs.readFileSync(cfgFile, 'utf8').replace(new RegExp(`("${field}": )[^,\\n]+`), `$1${literal}`);
    fs.writeFileSync(cfgFile, text);
    const r = await runCli(['inspect', model]);
    expect(r.stderr).toMatch(new RegExp(`\\[ERR_CONFIG\\].*field '${field}' must be a positive (integer|number), got ${literal.startsWith('-') ? '-' : ''}a number beyond the float64 range`));
    expect(r.stderr).not.toMatch(/got null/);
    expect(r.status).toBe(1);
  });
});

describe('negative layer numbers', () => {
  it.each([
    ['prune', '--remove-layers', '-1'],
    ['prune', '--remove-layers', '2,-3'],
    ['eval', '--skip-layers', '-1'],
  ])('%s %s %s says layers are 0-based and non-negative (exit 2)', async (command, option, value) => {
    const model = modelCopy(path.join(tmp, 'neg-model'));
    const outParent = path.join(tmp, `neg-out-${command}-${value}`);
    const args = command === 'prune' ? ['prune', model, option, value, '--out', path.join(outParent, 'o')] : ['eval', model, '--data', tinyStoriesText, option, value];
    const r = await runCli(args);
    expect(r.stderr).toMatch(new RegExp(`${option}: layer numbers are 0-based and non-negative; got '-\\d'`));
    expect(r.stderr).not.toMatch(/ambiguous/);
    expect(r.status).toBe(2);
    expect(listTree(outParent)).toEqual([]);
  });
});

describe('a header with 130,000 tensors', () => {
  it('inspect lists them all (no "Maximum call stack size exceeded")', async () => {
    const model = modelCopy(path.join(tmp, 'many-tensors'));
    withExtraTensors(model, Array.from({ length: 130_000 }, (_, i) => ({ name: `extra.${i}`, shape: [1], bytes: 4 })));
    const r = await runCli(['inspect', model], { heapMiB: 1024 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^warnings\s+130000$/m);
    expect(r.stdout).toContain("unknown tensor 'extra.129999' F32 [1]");
  });
});

describe('tensor names with control characters', () => {
  const evil = 'evil\u001b[31mRED\u001b[0m\nok: forged line \u202eabc\u0007';
  const shown = "'evil\\x1b[31mRED\\x1b[0m\\nok: forged line \\u202eabc\\x07'";

  it('inspect shows them escaped', async () => {
    const model = modelCopy(path.join(tmp, 'ansi-inspect'));
    withExtraTensors(model, [{ name: evil, shape: [1], bytes: 4 }]);
    const r = await runCli(['inspect', model]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`unknown tensor ${shown} F32 [1]`);
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/);
    expect(r.stdout).not.toMatch(/^ok: forged line/m);
  });

  it('an error naming such a tensor shows it escaped', async () => {
    const model = modelCopy(path.join(tmp, 'ansi-error'));
    withExtraTensors(model, [{ name: evil, shape: [2], bytes: 4 }]); // 4 bytes for 2 F32 values: refused
    const r = await runCli(['inspect', model]);
    expect(r.stderr).toContain(`[ERR_SAFETENSORS_BYTE_LENGTH]: ${path.join(model, 'model.safetensors')}: tensor ${shown}`);
    expect(r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/);
    expect(r.status).toBe(1);
  });

  it('prune warnings about such a tensor are escaped too', async () => {
    const model = modelCopy(path.join(tmp, 'ansi-prune'));
    withExtraTensors(model, [{ name: evil, shape: [1], bytes: 4 }]);
    const r = await runCli(['prune', model, '--remove-layers', '1', '--out', path.join(tmp, 'ansi-prune-out')]);
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).toContain(shown);
    expect(r.stdout + r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/);
  });
});

describe('per-layer lists of the wrong length', () => {
  it.each([
    ['layer_types', ['full_attention', 'full_attention', 'full_attention']],
    ['mlp_layer_types', ['dense', 'dense', 'dense', 'dense', 'dense', 'dense']],
  ])('%s with a wrong length is refused, naming both lengths; prune writes nothing', async (field, list) => {
    const model = modelCopy(path.join(tmp, `lt-${field}`), { [field]: list });
    const outParent = path.join(tmp, `lt-out-${field}`);
    const r = await runCli(['prune', model, '--remove-layers', '1', '--out', path.join(outParent, 'o')]);
    expect(r.stderr).toMatch(new RegExp(`\\[ERR_CONFIG\\].*config\\.json: field '${field}' has ${list.length} entries, but num_hidden_layers is 5`));
    expect(r.status).toBe(1);
    expect(listTree(outParent)).toEqual([]);
  });
});
