/**
 * A body over MAX_BODY_BYTES always gets its 413 JSON error, never a connection reset: the node
 * reads and discards the rest of the upload (up to MAX_DRAIN_BYTES) before it answers and closes,
 * so no unread data is left on the socket for the kernel to answer with a RST. Against a real
 * node process, 1,000 tries, with the length declared and chunked.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { NodeProcesses, type SpawnedNode } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const TRIES = 1_000;
/** Requests in flight at once. */
const CONCURRENCY = 8;
const BODY_BYTES = 2 * 1024 * 1024;
/** Bound on one try: a node that stops reading would leave the upload hanging. */
const TRY_TIMEOUT_MS = 10_000;

const nodes = new NodeProcesses();
const dirs = new TempDirs();
let node: SpawnedNode;
const body = Buffer.alloc(BODY_BYTES, 0x20);

beforeAll(async () => {
  ensureBuilt();
  node = await nodes.start({ env: { DATABASE_PATH: join(await dirs.create('oversized-'), 'c.db') } });
});
afterAll(async () => {
  await nodes.killAll();
  await dirs.removeAll();
});

interface Outcome {
  readonly status?: number;
  readonly code?: string;
  readonly error?: string;
}

/** One upload of `body` to `path`: what came back (status and error code), or the socket error. */
function upload(path: string, chunked: boolean, contentType = 'application/json'): Promise<Outcome> {
  return new Promise((resolve) => {
    // As a write-token holder: batches need one, and it lifts the anonymous body bound (1 KiB).
    const headers: Record<string, string> = { ...WRITER_HEADERS, 'content-type': contentType };
    if (!chunked) headers['content-length'] = String(BODY_BYTES);
    const req = request({ host: '127.0.0.1', port: node.port, method: 'POST', path, headers, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${TRY_TIMEOUT_MS} ms`)), TRY_TIMEOUT_MS);
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      resolve(outcome);
    };
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          finish({ status: res.statusCode, code: (JSON.parse(text) as { error: { code: string } }).error.code });
        } catch {
          finish({ status: res.statusCode, error: `not JSON: ${text.slice(0, 80)}` });
        }
      });
      res.on('error', (error) => finish({ status: res.statusCode, error: error.message }));
    });
    req.on('error', (error) => finish({ error: (error as NodeJS.ErrnoException).code ?? error.message }));
    // In pieces, as a client on a real network sends it: the node sees the first before the rest.
    const piece = 64 * 1024;
    let offset = 0;
    const writeMore = (): void => {
      while (offset < BODY_BYTES) {
        const chunk = body.subarray(offset, offset + piece);
        offset += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', writeMore);
          return;
        }
      }
      req.end();
    };
    writeMore();
  });
}

async function tries(count: number, one: (i: number) => Promise<Outcome>): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const outcome = await one(next++);
        const key = outcome.error !== undefined ? `error ${outcome.error}` : `${outcome.status} ${outcome.code}`;
        tally.set(key, (tally.get(key) ?? 0) + 1);
      }
    }),
  );
  return tally;
}

describe('an oversized body', () => {
  it(`gets the 413 JSON error on every one of ${TRIES} tries, declared or chunked`, async () => {
    const tally = await tries(TRIES, (i) => upload('/api/views', i % 2 === 1));
    expect(Object.fromEntries(tally)).toEqual({ '413 body_too_large': TRIES });
    // The node is fine afterwards.
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
  }, 600_000);

  it('gets its 4xx, not a reset, when it is refused for another reason before being read', async () => {
    const tally = await tries(100, (i) => (i % 2 === 0 ? upload('/api/pages/home/views', false, 'text/plain') : upload('/api/pages/%ZZ/views', true)));
    expect(Object.fromEntries(tally)).toEqual({ '415 unsupported_media_type': 50, '400 bad_page_name': 50 });
  }, 120_000);
});
