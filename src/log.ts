/**
 * The logger: pino, one JSON object per line on stdout. Requests are not logged one by one (that
 * would cost more than the increment itself); errors and lifecycle events are.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; stdout (synchronously, so nothing is lost on exit) when omitted. */
  readonly destination?: DestinationStream;
  /** Fields on every line (e.g. the node name). */
  readonly base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level,
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that drops everything: for tests and tools that do not care. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
