/** Numbers as people read them: one formatter for the progress line, command output and report.md. */
import { formatBytes, formatBytesOf, formatCount, formatDuration, formatSi, plural } from '../../lib/util/format';

it('groups thousands, whatever the machine locale', () => {
  expect([0, 999, 1000, 62737, 1254740, -4200].map(formatCount)).toEqual(['0', '999', '1,000', '62,737', '1,254,740', '-4,200']);
});

it('makes the noun agree with its count', () => {
  expect(plural(1, 'document')).toBe('1 document');
  expect(plural(2, 'document')).toBe('2 documents');
  expect(plural(0, 'window')).toBe('0 windows');
  expect(plural(1, 'batch')).toBe('1 batch');
  expect(plural(66, 'batch')).toBe('66 batches');
  expect(plural(62737, 'token')).toBe('62,737 tokens');
  expect(plural(3, 'other file')).toBe('3 other files');
});

it('gives bytes in binary units, a done/total pair in the total’s unit, rates with SI suffixes and durations', () => {
  expect([0, 1023, 1024, 1536, 676_659, 2 ** 30 * 13.5].map(formatBytes)).toEqual(['0 B', '1,023 B', '1.0 KiB', '1.5 KiB', '660.8 KiB', '13.5 GiB']);
  expect(formatBytesOf(0, 676_659)).toBe('0.0/660.8 KiB');
  expect(formatBytesOf(1.2 * 2 ** 20, 2.6 * 2 ** 20)).toBe('1.2/2.6 MiB');
  expect(formatBytesOf(10, 100)).toBe('10/100 B');
  expect([950, 12345, 4.2e6, 7e9].map(formatSi)).toEqual(['950', '12.3k', '4.2M', '7.0G']);
  expect([0, 59.6, 3725, -1, Number.NaN].map(formatDuration)).toEqual(['0:00', '1:00', '1:02:05', '--:--', '--:--']);
});
