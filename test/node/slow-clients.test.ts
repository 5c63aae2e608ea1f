/**
 * Slow and greedy clients against a real node (issue 14): 200 connections trickling their request
 * bodies do not stop a normal client from counting, and the node cuts them at its request timeout
 * (408) instead of holding them for minutes; oversized headers are refused (431) on every route
 * but the live feed, which still takes its long queries.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_TIMEOUT_MS } from '../../src/http/server-limits.js';
import { ensureBuilt } from '../helpers/build.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { eventually } from '../helpers/eventually.js';
import { NodeProcesses, TEST_WRITE_TOKEN } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const SLOW_CLIENTS = 200;
const dirs = new TempDirs();
const nodes = new NodeProcesses();
const sockets: Socket[] = [];

beforeAll(() => ensureBuilt());
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await nodes.killAll();
  await dirs.removeAll();
});

interface SlowClient {
  readonly socket: Socket;
  answer: string;
  closed: boolean;
}

/** A POST that declares a 1,000-byte body and sends one byte a second. */
function slowClient(port: number): Promise<SlowClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    const client: SlowClient = { socket, answer: '', closed: false };
    let trickle: NodeJS.Timeout | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (client.answer += chunk));
    socket.on('close', () => {
      client.closed = true;
      clearInterval(trickle);
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.write(`POST /api/pages/slow/views HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nAuthorization: Bearer ${TEST_WRITE_TOKEN}\r\nContent-Length: 1000\r\n\r\n{"by":`);
      trickle = setInterval(() => socket.write(' '), 1_000);
      resolve(client);
    });
    socket.once('error', reject);
  });
}

async function post(url: string, page: string): Promise<number> {
  const response = await fetch(`${url}/api/pages/${page}/views`, { method: 'POST', headers: WRITER_HEADERS });
  expect(response.status).toBe(200);
  return ((await response.json()) as { count: number }).count;
}

describe('slow and greedy clients', () => {
  it(`${SLOW_CLIENTS} slow request bodies do not stop a normal client from counting, and are cut at the request timeout`, async () => {
    const dir = await dirs.create('slow-');
    const node = await nodes.start({ env: { DATABASE_PATH: join(dir, 'c.db') } });
    const slow = await Promise.all(Array.from({ length: SLOW_CLIENTS }, () => slowClient(node.port)));

    for (let i = 1; i <= 50; i++) expect(await post(node.url, 'normal')).toBe(i);
    expect(slow.filter((c) => c.closed)).toHaveLength(0);

    // Cut by the node at REQUEST_TIMEOUT_MS (checked every second), each with a 408.
    await eventually(() => expect(slow.filter((c) => !c.closed)).toHaveLength(0), { timeoutMs: REQUEST_TIMEOUT_MS + 20_000, intervalMs: 200 });
    expect([...new Set(slow.map((c) => c.answer.split('\r\n')[0]))]).toEqual(['HTTP/1.1 408 Request Timeout']);
    expect(((await (await fetch(`${node.url}/api/pages/slow`)).json()) as { count: number }).count).toBe(0);
    expect(await post(node.url, 'normal')).toBe(51);
  }, 90_000);

  it('refuses more than 16 KiB of headers with 431 on the API, takes a long live-feed query', async () => {
    const dir = await dirs.create('headers-');
    const node = await nodes.start({ env: { DATABASE_PATH: join(dir, 'c.db') } });
    const big = await fetch(`${node.url}/api/pages/home/views`, { method: 'POST', headers: { 'x-padding': 'x'.repeat(20 * 1024) } });
    expect(big.status).toBe(431);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('headers_too_large');
    expect(((await (await fetch(`${node.url}/api/pages/home`)).json()) as { count: number }).count).toBe(0);

    // 100 page names of 200 bytes: a ~20 KiB query, over the API's limit, within the feed's.
    const pages = Array.from({ length: 100 }, (_, i) => `${'p'.repeat(197)}${String(i).padStart(3, '0')}`);
    const query = pages.map((p) => `page=${p}`).join('&');
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/api/live?${query}`);
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    expect(JSON.parse(first)).toMatchObject({ type: 'page', count: 0 });
    ws.close();
  });
});
