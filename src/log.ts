/**
 * The logger: pino, one JSON object per line on stdout. Requests are not logged one by one (that
 * would cost more than the increment itself); errors and lifecycle events are.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/**
 * The narrow logging seam every module below the composition root takes (store, replication,
 * discovery, http): pino's Logger satisfies it, tests pass a recorder or `noLog`.
 */
export interface Log {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/** A Log that drops everything. */
export const noLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

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
