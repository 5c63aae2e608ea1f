import type { DiscoveryLog } from '../../src/discovery/discovery.js';

export interface LogEntry {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A DiscoveryLog that keeps what it was told, for assertions. */
export function recordingLog(): DiscoveryLog & { entries: LogEntry[]; warnings(): LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    info: (fields, message) => entries.push({ level: 'info', fields, message }),
    warn: (fields, message) => entries.push({ level: 'warn', fields, message }),
    warnings: () => entries.filter((entry) => entry.level === 'warn'),
  };
}
