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
 * - prom-client's first render: the default collectors' code compiled on first use (~5 ms).
 * What is left of a first request (~2–4 ms more than the next: Node's HTTP server and koa run
 * for the first time) is the same on a bare node:http server.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface WarmUpDeps {
  /** The metrics exposition: rendered once and thrown away. */
  readonly render: () => Promise<string>;
}

/** Warms the first requests' paths and collects the start-up garbage; returns the ms it took. */
export async function warmUp(deps: WarmUpDeps): Promise<number> {
  const started = performance.now();
  void (globalThis as { Response?: unknown }).Response;
  // Also resets the event-loop delay histogram, so the first scrape reports the loop since now.
  await deps.render();
  collectGarbage();
  return performance.now() - started;
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
