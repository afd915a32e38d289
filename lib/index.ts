/** shortgpt-native: the typed library. */
export { ShortGptError, UsageError } from './errors';
export { packageVersion } from './version';
export { doctorReport, type DoctorReport } from './cli/commands/doctor';
