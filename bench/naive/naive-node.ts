/**
 * The naive scheme the project replaces, as a small real server for the baseline: each node
 * reads a row, writes `count + 1`, and pushes the whole row to the others, who overwrite theirs.
 * It is written to be as favourable as the scheme allows — the read and the write happen in one
 * synchronous step (no local lost update), the push is immediate — so what it loses comes from
 * the scheme itself: two nodes counting the same page at once overwrite each other.
 *
 * It speaks the subset of the real node's HTTP API the benchmark uses: POST /api/pages/:page/views,
 * POST /api/views, GET /api/pages, GET /api/cluster (peers, digest), GET /metrics
 * (replication_bytes_total) and the live feed `/api/live?page=…` (uncoalesced). Loopback only,
 * no authentication: it exists to be measured, never deployed.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Database from 'better-sqlite3';
import WebSocket, { WebSocketServer } from 'ws';
import { LatencyProbe } from '../../src/latency-probe.js';

/** Redial delay while a peer is not up yet. */
const REDIAL_MS = 50;
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const PEER_PATH = '/naive-peer';
const LIVE_PATH = '/api/live';
const MAX_PAGE_BYTES = 256;

const env = process.env;
const port = Number(env.PORT ?? '0');
const host = env.HOST ?? '127.0.0.1';
const nodeName = env.NODE_NAME ?? 'naive';
const peers = (env.PEERS ?? '').split(',').filter((p) => p !== '');
// The same probe as our node's (src/latency-probe.ts), on the same variables and the same clock.
const traceDir = env.LATENCY_TRACE_DIR;
const probe = traceDir === undefined || traceDir === '' ? undefined : new LatencyProbe({ name: nodeName, pagePrefix: env.LATENCY_TRACE_PAGES ?? '', clock: () => Number(process.hrtime.bigint()) / 1e6 });
probe?.start();

const db = new Database(env.DATABASE_PATH ?? ':memory:');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS counts (page TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID');
const readRow = db.prepare<[string], { count: number }>('SELECT count FROM counts WHERE page = ?');
const writeRow = db.prepare<[string, number]>('INSERT INTO counts (page, count) VALUES (?, ?) ON CONFLICT (page) DO UPDATE SET count = excluded.count');
const listRows = db.prepare<[string, number], { page: string; count: number }>('SELECT page, count FROM counts WHERE page > ? ORDER BY page LIMIT ?');
const allRows = db.prepare<[], { page: string; count: number }>('SELECT page, count FROM counts ORDER BY page');

let bytesSent = 0;
const outbound = new Map<string, WebSocket>();
const liveSubscribers = new Map<string, Set<WebSocket>>();

function publish(page: string, count: number): void {
  const subscribers = liveSubscribers.get(page);
  if (subscribers === undefined) return;
  const frame = JSON.stringify({ type: 'page', page, count, replicas: {}, at: Date.now() });
  for (const socket of subscribers) if (socket.readyState === WebSocket.OPEN) socket.send(frame);
}

/** Read the row, write count + by, push the whole row: the scheme under test. */
function countView(page: string, by: number): number {
  const count = (readRow.get(page)?.count ?? 0) + by;
  writeRow.run(page, count);
  probe?.mark('committed', page);
  const frame = JSON.stringify({ page, count });
  probe?.mark('encoded', page);
  for (const [address, socket] of outbound) {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(frame);
      probe?.mark('written', page, address);
      bytesSent += Buffer.byteLength(frame);
    }
  }
  publish(page, count);
  probe?.mark('feed', page);
  return count;
}

/** A peer's row overwrites ours. */
function overwrite(page: string, count: number): void {
  writeRow.run(page, count);
  probe?.mark('merged', page);
  publish(page, count);
  probe?.mark('feed', page);
}

function validPage(page: unknown): page is string {
  return typeof page === 'string' && page.length > 0 && Buffer.byteLength(page) <= MAX_PAGE_BYTES;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > MAX_BODY_BYTES) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function digest(): string {
  const hash = createHash('sha256');
  for (const row of allRows.iterate()) hash.update(`${row.page}\u0000${row.count}\n`);
  return hash.digest('hex');
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://naive');
  const single = /^\/api\/pages\/([^/]+)\/views$/.exec(url.pathname);
  if (req.method === 'POST' && single !== null) {
    await readBody(req);
    const page = decodeURIComponent(single[1] as string);
    probe?.mark('parsed', page);
    if (!validPage(page)) return reply(res, 400, { error: { code: 'bad_page_name', message: 'bad page' } });
    return reply(res, 200, { page, count: countView(page, 1) });
  }
  if (req.method === 'POST' && url.pathname === '/api/views') {
    const body = JSON.parse(await readBody(req)) as { views?: Array<{ page?: unknown; by?: unknown }> };
    const views = body.views ?? [];
    for (const v of views) if (!validPage(v.page) || !(typeof v.by === 'number' && Number.isSafeInteger(v.by) && v.by > 0)) return reply(res, 400, { error: { code: 'bad_request', message: 'bad view' } });
    const pages = db.transaction(() => views.map((v) => ({ page: v.page as string, count: countView(v.page as string, v.by as number) })))();
    return reply(res, 200, { pages });
  }
  if (req.method === 'GET' && url.pathname === '/api/pages') {
    const limit = Math.min(1000, Number(url.searchParams.get('limit') ?? '100'));
    const rows = listRows.all(url.searchParams.get('after') ?? '', limit + 1);
    const pages = rows.slice(0, limit);
    return reply(res, 200, { pages, next: rows.length > limit ? (pages[pages.length - 1] as { page: string }).page : null });
  }
  if (req.method === 'GET' && url.pathname === '/api/cluster') {
    const peerStatus = peers.map((address) => ({ address, replicaId: address, state: outbound.get(address)?.readyState === WebSocket.OPEN ? 'connected' : 'connecting' }));
    return reply(res, 200, { node: { name: nodeName }, peers: peerStatus, digest: digest() });
  }
  if (req.method === 'GET' && url.pathname === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`replication_bytes_total{direction="sent",type="row"} ${bytesSent}\n`);
    return;
  }
  reply(res, 404, { error: { code: 'not_found', message: 'not found' } });
}

function dial(address: string): void {
  const socket = new WebSocket(`ws://${address}${PEER_PATH}`, { perMessageDeflate: false });
  socket.on('open', () => outbound.set(address, socket));
  socket.on('error', () => {});
  socket.on('close', () => {
    if (outbound.get(address) === socket) outbound.delete(address);
    if (!stopping) setTimeout(() => dial(address), REDIAL_MS);
  });
}

const peerServer = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const liveServer = new WebSocketServer({ noServer: true, perMessageDeflate: false });
peerServer.on('connection', (socket: WebSocket) => {
  socket.on('message', (data) => {
    const arrivedAt = probe?.now();
    const row = JSON.parse(String(data)) as { page?: unknown; count?: unknown };
    if (arrivedAt !== undefined && typeof row.page === 'string') probe?.markAll('received', [{ page: row.page }], undefined, arrivedAt);
    if (validPage(row.page) && typeof row.count === 'number') overwrite(row.page, row.count);
  });
});

const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
  probe?.request(req.url, res);
  handle(req, res).catch((error: unknown) => reply(res, 400, { error: { code: 'bad_request', message: String(error) } }));
});
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url ?? '/', 'http://naive');
  if (url.pathname === PEER_PATH) peerServer.handleUpgrade(req, socket, head, (ws) => peerServer.emit('connection', ws, req));
  else if (url.pathname === LIVE_PATH) {
    const pages = url.searchParams.getAll('page').filter(validPage);
    liveServer.handleUpgrade(req, socket, head, (ws) => {
      for (const page of pages) {
        let set = liveSubscribers.get(page);
        if (set === undefined) liveSubscribers.set(page, (set = new Set()));
        set.add(ws);
        ws.send(JSON.stringify({ type: 'page', page, count: readRow.get(page)?.count ?? 0, replicas: {}, at: Date.now() }));
      }
      ws.on('close', () => {
        for (const page of pages) liveSubscribers.get(page)?.delete(ws);
      });
    });
  } else socket.destroy();
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  for (const socket of outbound.values()) socket.terminate();
  for (const ws of peerServer.clients) ws.terminate();
  for (const ws of liveServer.clients) ws.terminate();
  server.closeAllConnections();
  server.close(() => {
    db.close();
    if (probe !== undefined && traceDir !== undefined) {
      probe.stop();
      probe.writeTo(traceDir);
    }
    process.exitCode = 0;
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, host, () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: bound, node: nodeName })}\n`);
  for (const peer of peers) dial(peer);
});
