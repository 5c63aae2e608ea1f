/**
 * One koa app of the node over a store, served on 127.0.0.1 for route tests: the dependencies a
 * test does not care about get plain defaults (a single-node status, fresh metrics, no log, CORS
 * `*`, 4 KiB bodies); `deps` overrides any of them.
 *
 *   const server = await serveApp(store, { adminTokens: tokenSet([ADMIN]) });
 */
import { createApp, type AppDeps } from '../../src/http/app.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import { noLog } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { Store } from '../../src/store/store.js';
import { serve, type TestServer } from './http-server.js';

/** The node the single-node status describes. */
export const TEST_NODE = { name: 'n', address: '127.0.0.1:1', version: '1', startedAt: '2026-01-01T00:00:00.000Z' } as const;

export function testAppDeps(store: Store, deps: Partial<AppDeps> = {}): AppDeps {
  return {
    store,
    cluster: singleNodeStatus(store, () => TEST_NODE),
    metrics: createMetrics(),
    log: noLog,
    corsOrigins: '*',
    maxBodyBytes: 4096,
    ...deps,
  };
}

export async function serveApp(store: Store, deps: Partial<AppDeps> = {}): Promise<TestServer> {
  return serve(createApp(testAppDeps(store, deps)).callback());
}
