/**
 * A real node with bench-only options, for the bench's comparisons: the same configuration from
 * the environment as `npm start`, no commands, no backup-writer record, plus
 * - `BENCH_NODE_UNSEALED=1`: peer sessions skip the per-frame MAC (NodeOptions.unsealedFrames;
 *   the `mac` phase's end-to-end comparison);
 * - `BENCH_NODE_COALESCE_WINDOW_MS=<ms>`: at most one delta frame per peer per window
 *   (NodeOptions.coalesceWindowMs; `--coalesce-window-ms` of the latency phase);
 * - `BENCH_NODE_COALESCE_OFF=1`: every live delta sent at once, never merged in an outbox behind a
 *   busy socket (NodeOptions.coalesceAboveBytes Infinity; `--cluster-coalesce 0`).
 * Never deployed; the options exist nowhere else.
 */
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startNode } from '../src/node.js';

const window = Number(process.env.BENCH_NODE_COALESCE_WINDOW_MS ?? '0');
if (!Number.isFinite(window) || window < 0) throw new Error(`BENCH_NODE_COALESCE_WINDOW_MS must be a number of ms ≥ 0, got ${process.env.BENCH_NODE_COALESCE_WINDOW_MS}`);
const config = loadConfig(process.env, []);
const log = createLogger({ level: config.logLevel, base: { node: config.nodeName } });
const node = await startNode(config, {
  log,
  ...(process.env.BENCH_NODE_UNSEALED === '1' ? { unsealedFrames: true } : {}),
  ...(window > 0 ? { coalesceWindowMs: window } : {}),
  ...(process.env.BENCH_NODE_COALESCE_OFF === '1' ? { coalesceAboveBytes: Number.POSITIVE_INFINITY } : {}),
});
const onSignal = (): void => {
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  void node.stop().then(() => (process.exitCode = 0));
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
