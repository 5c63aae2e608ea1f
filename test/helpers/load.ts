/**
 * Write load on running nodes for tests that kill, stop or partition them meanwhile: closed-loop
 * clients that count what was acknowledged per page, so a test can check that nothing
 * acknowledged was lost.
 *
 *   const load = startLoad(nodes, { pages: ['a', 'b'] });
 *   await c.kill9();
 *   await load.stop();
 *   expect((await waitForConvergence(nodes)).totals.a).toBeGreaterThanOrEqual(load.acked.a);
 */
import type { ClusterNode } from './cluster-node.js';
import { increment, incrementBatch } from './http-client.js';

export interface Load {
  /** Views acknowledged (200), per page. */
  readonly acked: Record<string, number>;
  /** Requests that failed (node killed or stopping): their views may or may not have counted. */
  failed: number;
  /** Why requests failed, with the node's name (for failure messages). */
  readonly errors: string[];
  /** Requests answered, all clients together. */
  answered: number;
  /** Asks every client to finish its current request and stop; resolves when all did. */
  stop(): Promise<void>;
  /** Resolves when every client has finished (its bound reached, or its node gone). */
  readonly done: Promise<void>;
}

export interface LoadOptions {
  readonly pages: readonly string[];
  /** Concurrent closed-loop clients per node. */
  readonly clientsPerNode?: number;
  /** Hard bound on requests per client. */
  readonly maxRequestsPerClient?: number;
  /** Every `batchEvery`-th request of a client is a `POST /api/views` batch. */
  readonly batchEvery?: number;
}

/**
 * Closed-loop clients against each node, cycling through pages with `by` from 1 to 3 and an
 * occasional batch. A client whose request fails stops (its node is down); the rest go on.
 */
export function startLoad(nodes: readonly ClusterNode[], options: LoadOptions): Load {
  const clients = options.clientsPerNode ?? 4;
  const maxRequests = options.maxRequestsPerClient ?? 2_000;
  const batchEvery = options.batchEvery ?? 7;
  let stopping = false;
  const load: Omit<Load, 'stop' | 'done'> = {
    acked: Object.fromEntries(options.pages.map((p) => [p, 0])),
    failed: 0,
    errors: [],
    answered: 0,
  };
  const ack = (page: string, by: number) => {
    load.acked[page] = (load.acked[page] ?? 0) + by;
  };
  const runs = nodes.flatMap((node, n) =>
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < maxRequests && !stopping; i++) {
        const seed = n * 7919 + c * 104_729 + i;
        const page = options.pages[seed % options.pages.length] as string;
        const by = 1 + (seed % 3);
        try {
          if (i % batchEvery === batchEvery - 1) {
            const other = options.pages[(seed + 1) % options.pages.length] as string;
            await incrementBatch(node, [
              { page, by },
              { page: other, by: 1 },
            ]);
            ack(page, by);
            ack(other, 1);
          } else {
            await increment(node, page, by);
            ack(page, by);
          }
          load.answered++;
        } catch (error) {
          load.failed++;
          load.errors.push(`${node.name}: ${error instanceof Error ? `${error.message} ${String(error.cause ?? '')}` : String(error)}`);
          return;
        }
      }
    }),
  );
  const all = Promise.all(runs).then(() => undefined);
  return Object.assign(load, {
    done: all,
    stop: async () => {
      stopping = true;
      await all;
    },
  });
}

export function sum(record: Readonly<Record<string, number>>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}
