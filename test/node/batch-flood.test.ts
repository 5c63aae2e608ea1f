/**
 * A real node flooded with concurrent maximal batches of new pages (issue 14's fair event loop):
 * every batch of 10,000 new pages is ~1 s of CPU with analytics on, one atomic commit. The node
 * must keep answering /healthz and reads while they are in flight (the commit is spread over
 * loop turns, sqlite-store.ts), count exactly what it acknowledged (all-or-nothing: a 503 counts
 * nothing), and its own event-loop delay metric must stay far below one whole batch's commit.
 * Before: one I/O phase completed many bodies and committed them back to back (25 s without a
 * turn of the loop), and /healthz timed out.
 */
import { describe, expect, it } from 'vitest';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { nodeMetric, realNodes } from '../helpers/spawn-node.js';

const CLIENTS = 12;
const VIEWS = 10_000;
/**
 * The longest event-loop delay (the node's own metric) the flood may cause, seconds. A loose
 * bound on purpose (the slices are ~4 ms, the loop waited some 0.1–0.35 s at most on this busy
 * 2-core host): far above what slicing leaves, and below even one maximal batch committed in
 * one piece on a quiet machine (0.7–1.1 s), let alone the chain of them the bug made.
 */
const MAX_LOOP_DELAY_S = 5;

const { startNode } = realNodes();

describe('a node flooded with maximal batches of new pages', () => {
  it(`keeps answering /healthz and reads while ${CLIENTS} concurrent batches of ${VIEWS} new pages commit, and counts exactly what it acknowledged`, async () => {
    const node = await startNode({}, 'batch-flood-');
    await fetch(`${node.url}/api/pages/warm`);
    // The delay metric is reset by each scrape: this one starts the flood's window.
    await nodeMetric(node.url, 'dsqlite_nodejs_eventloop_lag_max_seconds');

    let inFlight = 0;
    let acked = 0;
    const statuses = new Map<string, number>();
    let answeredDuringFlood = 0;
    let flooding = true;
    const prober = (async () => {
      while (flooding) {
        const before = inFlight;
        const health = await fetch(`${node.url}/healthz`);
        expect(health.status).toBe(200);
        await health.text();
        const read = await fetch(`${node.url}/api/pages/warm`);
        expect(read.status).toBe(200);
        await read.text();
        // Both answered while batches were being read, parsed or committed (from before to after).
        if (before > 0 && inFlight > 0) answeredDuringFlood++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const views = Array.from({ length: VIEWS }, (_, i) => ({ page: `/flood/client-${client}/an-article-slug-${i}`, by: 1 }));
        inFlight++;
        try {
          const response = await fetch(`${node.url}/api/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views }) });
          const body = (await response.json()) as { error?: { code: string }; pages?: unknown[] };
          const key = `${response.status}${body.error !== undefined ? ` ${body.error.code}` : ''}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (response.status === 200) {
            expect(body.pages).toHaveLength(VIEWS);
            acked += VIEWS;
          }
        } finally {
          inFlight--;
        }
      }),
    );
    flooding = false;
    await prober;
    const loopDelay = await nodeMetric(node.url, 'dsqlite_nodejs_eventloop_lag_max_seconds');
    const counted = await nodeMetric(node.url, 'dsqlite_views_counted_total');
    process.stderr.write(`batch-flood: answers ${JSON.stringify(Object.fromEntries(statuses))}, /healthz and a read answered ${answeredDuringFlood} times during the flood, longest loop delay ${loopDelay?.toFixed(3)} s\n`);

    expect([...statuses.keys()].filter((key) => key !== '200' && key !== '503 overloaded')).toEqual([]);
    expect(acked).toBeGreaterThan(0);
    // Every acknowledged view counted, nothing of a refused batch.
    expect(counted).toBe(acked);
    expect(answeredDuringFlood).toBeGreaterThan(0);
    expect(loopDelay).toBeLessThan(MAX_LOOP_DELAY_S);
    node.signal('SIGTERM');
    expect((await node.exited).code).toBe(0);
  }, 180_000);
});
