/**
 * The work a fresh node process would otherwise do inside its first requests, done once before
 * it says `listening` (issue 14: at 1,000,000 pages the first GET /metrics after a start cost
 * 50–80 ms on a quiet host, the next ones 5). None of it grows with pages; an empty database
 * showed the same. Measured (main-thread CPU, /proc schedstat, 2-core host at load 7–13):
 * - the first major GC: loading the modules and opening the store leave ~17 MB of heap; V8's
 *   incremental marking of it finalized 30–70 ms after `listening`, an 18–34 ms pause inside
 *   the first request. Collected here instead, when nothing waits on it;
 * - Node's fetch (undici), loaded the first time anything reads the `Response` global, as koa
 *   does for every body that is not a string or a Buffer (`instanceof Response`): 20–30 ms in
 *   the first JSON answer (`/api/cluster`, `/healthz`);
 * - prom-client's first render: the default collectors' code compiled on first use (~5 ms);
 * - Node's HTTP server, koa, the middleware and the routes run for the first time (~10 ms):
 *   a few requests through a copy of the public app on a loopback port of its own, closed after.
 *   The copy counts into metrics of its own, so the node's show none of them.
 */
import { createServer, get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** What the copy of the app is asked: a JSON answer, a status view, a private route (a 404 there). */
export const WARM_UP_PATHS = ['/healthz', '/api/cluster', '/metrics'] as const;
/** A warm-up request taking longer is abandoned, and the rest with it: the start goes on without. */
export const WARM_UP_REQUEST_TIMEOUT_MS = 5_000;

export interface WarmUpDeps {
  /** The metrics exposition: rendered once and thrown away. */
  readonly render: () => Promise<string>;
  /** A copy of the public app (`app.callback()`), served on loopback for WARM_UP_PATHS only while warming. */
  readonly app?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Aborted: the node is to stop, so what is left of the warm-up is skipped (checked between steps). */
  readonly stopRequested?: AbortSignal;
}

export interface WarmedUp {
  readonly ms: number;
  /** Why the requests through the copy of the app were given up (no loopback, a timeout …); undefined: served. */
  readonly requestsSkipped?: string;
}

/**
 * Warms the first requests' paths and collects the start-up garbage. A failing render fails the
 * start (the metrics would be broken); the warm-up requests are an optimisation and only reported.
 */
export async function warmUp(deps: WarmUpDeps): Promise<WarmedUp> {
  const started = performance.now();
  void (globalThis as { Response?: unknown }).Response;
  // Also resets the event-loop delay histogram, so the first scrape reports the loop since now.
  await deps.render();
  let requestsSkipped: string | undefined;
  if (deps.app !== undefined) {
    try {
      await serveOnce(deps.app, deps.stopRequested);
    } catch (error) {
      requestsSkipped = (error as Error).message;
    }
  }
  if (deps.stopRequested?.aborted !== true) collectGarbage();
  return { ms: performance.now() - started, ...(requestsSkipped !== undefined ? { requestsSkipped } : {}) };
}

/** GETs WARM_UP_PATHS from `app` on an ephemeral loopback port, then closes it and its connections. */
async function serveOnce(app: (req: IncomingMessage, res: ServerResponse) => void, stopRequested: AbortSignal | undefined): Promise<void> {
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    const { port } = server.address() as AddressInfo;
    for (const path of WARM_UP_PATHS) {
      if (stopRequested?.aborted === true) throw new Error('the node is stopping');
      await new Promise<void>((resolve, reject) => {
        const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: WARM_UP_REQUEST_TIMEOUT_MS }, (res) => {
          res.resume();
          res.once('end', resolve);
          res.once('error', reject);
        });
        req.once('timeout', () => req.destroy(new Error(`GET ${path} took more than ${WARM_UP_REQUEST_TIMEOUT_MS} ms`)));
        req.once('error', reject);
      });
    }
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A full, synchronous GC. `gc` is given only to contexts made while --expose-gc is on. */
function collectGarbage(): void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) {
    exposed();
    return;
  }
  setFlagsFromString('--expose-gc');
  try {
    (runInNewContext('gc') as () => void)();
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
