/**
 * A real node whose peer sessions skip the per-frame MAC (NodeOptions.unsealedFrames), for the
 * bench's end-to-end comparison only: the same configuration from the environment as `npm start`,
 * no commands, no backup-writer record. Never deployed; the knob exists nowhere else.
 */
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startNode } from '../src/node.js';

const config = loadConfig(process.env, []);
const log = createLogger({ level: config.logLevel, base: { node: config.nodeName } });
const node = await startNode(config, { log, unsealedFrames: true });
const onSignal = (): void => {
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  void node.stop().then(() => (process.exitCode = 0));
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
