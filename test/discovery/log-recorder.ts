import type { Log } from '../../src/log.js';

export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields: Record<string, unknown>;
  readonly message: string | undefined;
}

/** A Log that keeps what it was told, for assertions. */
export function recordingLog(): Log & { entries: LogEntry[]; warnings(): LogEntry[] } {
  const entries: LogEntry[] = [];
  const record =
    (level: LogEntry['level']) =>
    (fields: object, message?: string): void => {
      entries.push({ level, fields: { ...fields }, message });
    };
  return {
    entries,
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    warnings: () => entries.filter((entry) => entry.level === 'warn'),
  };
}
