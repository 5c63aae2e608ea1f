/** The memory phase: RSS, V8 heap and database bytes per slot as pages grow, on a cluster of its own. */
import { Cluster } from '../cluster.js';
import { waitConverged } from '../convergence.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { MemoryResult } from '../result.js';
import { round } from '../stats.js';

/** Views per POST /api/views in the memory phase. */
export const MEMORY_BATCH_VIEWS = 1_000;
/** RSS is read at this many distinct pages, then at `memoryPages`. */
export const MEMORY_FIRST_PAGES = 1_000;
const HEAP_USED_METRIC = 'dsqlite_nodejs_heap_size_used_bytes';

/**
 * Memory as pages grow, with the traffic held equal: first `memoryPages` increments over 1,000
 * pages (RSS read), then `memoryPages` increments over `memoryPages` new pages (RSS read again),
 * both in batches of MEMORY_BATCH_VIEWS views spread over the nodes. Only the number of
 * distinct pages differs between the two readings, so heap grown by the load itself (V8 keeps
 * what it once needed) does not pass for per-page memory.
 */
export async function runMemory(knobs: Knobs, processes: ProcessSet, dir: string): Promise<MemoryResult> {
  const cluster = await Cluster.start({ kind: 'ours', nodes: knobs.nodes, processes, dir, label: 'mem' });
  try {
    const started = performance.now();
    const write = async (increments: number, page: (i: number) => string): Promise<void> => {
      for (let done = 0, request = 0; done < increments; request++) {
        const node = cluster.nodes[request % cluster.nodes.length] as (typeof cluster.nodes)[number];
        const chunk = Math.min(MEMORY_BATCH_VIEWS, increments - done);
        const body = JSON.stringify({ views: Array.from({ length: chunk }, (_, i) => ({ page: page(done + i), by: 1 })) });
        const res = await node.http.send('POST', '/api/views', body);
        if (res.status !== 200) throw new Error(`memory phase: POST /api/views answered ${res.status}: ${res.body.slice(0, 200)}`);
        done += chunk;
      }
      await waitConverged(cluster);
    };
    log(`memory: ${knobs.memoryPages} increments over ${MEMORY_FIRST_PAGES} pages`);
    await write(knobs.memoryPages, (i) => `mem-${i % MEMORY_FIRST_PAGES}`);
    const rssAtFirstBytes = cluster.nodes.map((n) => n.child.memory()?.rss ?? Number.NaN);
    const heapAtFirstBytes = await cluster.metricPerNode(HEAP_USED_METRIC);
    log(`memory: ${knobs.memoryPages} increments over ${knobs.memoryPages} new pages`);
    await write(knobs.memoryPages, (i) => `mem-new-${i}`);
    const writeMs = round(performance.now() - started, 0);
    const rssAtAllBytes = cluster.nodes.map((n) => n.child.memory()?.rss ?? Number.NaN);
    const heapAtAllBytes = await cluster.metricPerNode(HEAP_USED_METRIC);
    const slots = await cluster.metricPerNode('dsqlite_store_slots');
    const databaseBytes = cluster.databaseBytes();
    const growth = round(Math.max(...rssAtAllBytes.map((r, i) => r / (rssAtFirstBytes[i] as number))), 3);
    const bytesPerSlot = round(databaseBytes.reduce((s, b) => s + b, 0) / slots.reduce((s, b) => s + b, 0), 1);
    return { pages: MEMORY_FIRST_PAGES + knobs.memoryPages, rssAtFirstBytes, rssAtAllBytes, heapAtFirstBytes, heapAtAllBytes, growth, slots, databaseBytes, bytesPerSlot, writeMs };
  } finally {
    await cluster.stop();
  }
}
