/** The progress line: what it shows, and that it is silent off a terminal and with --quiet. */
import { formatDuration, formatProgress, progressLine } from '../../lib/cli/progress';
import { capture } from '../helpers/io';

const p = { phase: 'score', layer: 2, layers: 5, windowsDone: 10, windowsTotal: 40, workDone: 5000, workTotal: 20000 };

it('shows phase, layer, windows, tokens per second and an ETA', () => {
  // 5,000 token-layers in 2 s over 5 layers = 500 whole-model tokens/s; a quarter done -> 6 s left.
  expect(formatProgress(p, 2)).toBe('scoring  layer 3/5  windows 10/40  500 tok/s  ETA 0:06');
  expect(formatProgress({ ...p, phase: 'rescore', step: 2 }, 2)).toMatch(/^re-scoring step 2 {2}layer 3\/5/);
  expect(formatProgress({ ...p, workDone: 0 }, 0)).toMatch(/ETA --:--$/);
  expect(formatDuration(3725)).toBe('1:02:05');
});

it('writes only to a terminal, and never with --quiet', () => {
  const tty = capture();
  (tty.stderr as { isTTY?: boolean }).isTTY = true;
  progressLine(tty, false).update({ ...p, workDone: 20000 });
  expect(tty.err()).toMatch(/^\rscoring {2}layer 3\/5/);

  const quiet = capture();
  (quiet.stderr as { isTTY?: boolean }).isTTY = true;
  const q = progressLine(quiet, true);
  q.update(p);
  q.note('calibration: 1 document');
  expect(quiet.err()).toBe('');

  const pipe = capture();
  const line = progressLine(pipe, false);
  line.update(p);
  line.note('calibration: 1 document');
  expect(pipe.err()).toBe('calibration: 1 document\n');
  expect(tty.out() + quiet.out() + pipe.out()).toBe('');
});
