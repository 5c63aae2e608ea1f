/**
 * Holds count requests while the node catches up with its peers at start (`replication/catch-up.ts`):
 * they wait for the catch-up rather than being answered from a possibly stale copy. Bounded: at
 * most `MAX_CATCH_UP_WAITERS` requests wait (past it: 503 `catching_up`), and the catch-up itself
 * ends by `STARTUP_SYNC_TIMEOUT_MS`. Other routes (health, readiness, status, metrics, assets)
 * answer at once.
 */
import type { Middleware, Next } from 'koa';
import { AppError } from '../errors.js';

export const MAX_CATCH_UP_WAITERS = 1_000;

/** The narrow view http has of the catch-up. */
export interface ServingGate {
  readonly ready: boolean;
  wait(): Promise<void>;
}

/**
 * Paths that answer or change a count: the pages API, batches, the page (which counts its view),
 * the series, the tag's pixel and the badge, and the admin routes (a reset on a stale copy would
 * pick an epoch the cluster already passed, and be dropped).
 */
export function isCountPath(path: string): boolean {
  return (
    path === '/' ||
    path.startsWith('/api/pages') ||
    path === '/api/views' ||
    path.startsWith('/pages/') ||
    path.startsWith('/api/admin') ||
    path === '/api/series' ||
    path === '/api/top' ||
    path === '/count.gif' ||
    path.startsWith('/badge/')
  );
}

export function catchUpGate(gate: ServingGate, maxWaiters = MAX_CATCH_UP_WAITERS): Middleware {
  let waiting = 0;
  const held = async (next: Next): Promise<void> => {
    waiting++;
    try {
      await gate.wait();
    } finally {
      waiting--;
    }
    return next();
  };
  // Not async once the node is ready: a pass-through layer adds no promise of its own (see privileged.ts).
  return function catchUp(ctx, next) {
    if (gate.ready || ctx.method === 'OPTIONS' || !isCountPath(ctx.path)) return next();
    // A rejection, not a throw: a caller of the layer gets a promise either way.
    if (waiting >= maxWaiters) return Promise.reject(new AppError('catching_up', 'the node is catching up with its peers; try again in a moment or another node'));
    return held(next);
  };
}
