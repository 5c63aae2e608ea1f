#!/usr/bin/env node
/**
 * The process entry, and the only file touching `process` (besides config values read in
 * config.ts). `main.js` starts a node; `main.js migrate` migrates DATABASE_PATH and exits;
 * `main.js recover …` merges every node's backup (src/recovery/recover-command.ts);
 * `main.js check-backup-writer` is run.sh's one-writer check (src/recovery/check-writer-command.ts).
 * Exit codes: 0 clean stop, 1 failure at start or run, 2 bad configuration (one message naming
 * every problem on stderr). SIGTERM/SIGINT stop the node gracefully, during its start too; a second
 * signal forces exit.
 */
import { loadConfig, usage, type Config } from './config.js';
import { EXIT_BAD_CONFIG, EXIT_FAILURE, isAppError } from './errors.js';
import { LatencyProbe } from './latency-probe.js';
import { createLogger, noLog } from './log.js';
import { startNode, type RunningNode } from './node.js';
import { recordWriter, writerFromEnv } from './recovery/backup-writer.js';
import { runCheckWriterCommand } from './recovery/check-writer-command.js';
import { runRecoverCommand } from './recovery/recover-command.js';
import { migrateFile } from './store/migrate.js';

/** Exit code on a forced exit (second signal): 128 + SIGINT, as shells report it. */
export const EXIT_FORCED = 130;

async function main(argv: readonly string[]): Promise<void> {
  const command = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  const flags = command === undefined ? argv : argv.slice(1);
  if (command === 'recover' || command === 'check-backup-writer') {
    // Its own flags and settings (REPLICA_URL, LITESTREAM_*): not the node's configuration. Its
    // report is its output (JSON on stdout, words on stderr), so no log lines in between.
    const write = (stream: NodeJS.WriteStream) => (text: string) => void stream.write(text);
    const io = { env: process.env, stdout: write(process.stdout), stderr: write(process.stderr), log: noLog };
    process.exitCode = await (command === 'recover' ? runRecoverCommand(flags, io) : runCheckWriterCommand(flags, io));
    return;
  }
  if (flags.includes('--help') || flags.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  if (command !== undefined && command !== 'migrate') {
    process.stderr.write(`distributed-sqlite: unknown command ${JSON.stringify(command)}\n\n${usage()}\n`);
    process.exitCode = EXIT_BAD_CONFIG;
    return;
  }

  const config: Config = loadConfig(process.env, flags);
  const log = createLogger({ level: config.logLevel, base: { node: config.nodeName } });

  if (command === 'migrate') {
    const result = migrateFile(config.databasePath);
    log.info({ database: config.databasePath, from: result.from, to: result.to }, 'migrated');
    return;
  }

  // The signal handlers go on before the start, which takes a while (the store, the warm-up): a
  // signal during it stops the node like one after it. The start completes (cutting the warm-up
  // short), then the node stops, writing its clean-stop record, so the next start keeps the
  // replica id. Without a handler the default action ended the process there: no stop record,
  // and the next start minted a new id (identity.ts).
  const stopRequested = new AbortController();
  // Diagnostics only (LATENCY_TRACE_DIR): CLOCK_MONOTONIC, which every process on the host shares.
  const traceDir = config.latencyTraceDir;
  const probe = traceDir === undefined ? undefined : new LatencyProbe({ name: config.nodeName, pagePrefix: config.latencyTracePages, clock: () => Number(process.hrtime.bigint()) / 1e6 });
  let node: RunningNode | undefined;
  let signals = 0;
  const stop = (running: RunningNode): void => {
    running.stop().then(
      () => {
        if (probe !== undefined && traceDir !== undefined) {
          probe.stop();
          try {
            log.info({ path: probe.writeTo(traceDir) }, 'latency probe written');
          } catch (error) {
            log.error({ err: error }, 'writing the latency probe failed');
          }
        }
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        process.exitCode = 0;
      },
      (error: unknown) => {
        log.fatal({ err: error }, 'stop failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_FORCED);
    }
    if (node === undefined) {
      log.info({ signal }, 'signal received while starting: stopping once started');
      stopRequested.abort();
      return;
    }
    log.info({ signal }, 'signal received: stopping');
    stop(node);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  // Under run.sh with Litestream: record who writes this database's backup (one writer per path).
  const writer = config.checkpoints === 'external' ? writerFromEnv(process.env) : undefined;
  const writerRecord = writer === undefined ? undefined : recordWriter(config.databasePath, writer);
  probe?.start();
  try {
    node = await startNode(config, { log, warmUp: true, stopRequested: stopRequested.signal, ...(probe !== undefined ? { probe } : {}) });
  } finally {
    writerRecord?.close();
  }
  if (stopRequested.signal.aborted) stop(node);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // A catalogued error that ends a start (bad configuration, from config.ts or an adapter's own
  // checks): its message says what to fix, so no stack trace.
  if (isAppError(error) && error.exit !== undefined) {
    process.stderr.write(`distributed-sqlite: ${error.message}\n`);
    process.exit(error.exit);
  }
  process.stderr.write(`distributed-sqlite: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(EXIT_FAILURE);
});
