import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Slot } from '../../src/crdt/g-counter.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import { LIVE_CLIENT_BASE_BYTES, LIVE_MAX_HEADER_BYTES, LIVE_PATH, LiveFeed, liveClientCharge, MAX_BUFFERED_BYTES, type LiveFeedOptions } from '../../src/http/live-feed.js';
import { MAX_PAGES_PER_CLIENT, parseLiveQuery } from '../../src/http/live-query.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { silentLogger } from '../../src/log.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { eventually } from '../helpers/eventually.js';
import { ManualTimers } from '../helpers/manual-timers.js';
import { TempDirs } from '../helpers/temp-dir.js';

interface PageMessage {
  type: 'page';
  page: string;
  count: number;
  replicas: Record<string, number>;
  at: number;
}
interface ClusterMessage {
  type: 'cluster';
  cluster: { node: { name: string }; digest: string; versionVector: Record<string, number> };
}
type Message = PageMessage | ClusterMessage;

interface Client {
  ws: WebSocket;
  messages: Message[];
  bytes: number;
  closed: Promise<{ code: number; reason: string }>;
  pages(page?: string): PageMessage[];
  last(page: string): PageMessage | undefined;
}

interface Harness {
  store: SqliteStore;
  feed: LiveFeed;
  url: string;
}

const dirs = new TempDirs();
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dirs.removeAll();
});

async function start(options: Partial<Omit<LiveFeedOptions, 'store' | 'cluster' | 'log'>> = {}): Promise<Harness> {
  const dir = await dirs.create('live-');
  const store = await openSqliteStore({ path: join(dir, 'counters.db') });
  const feed = new LiveFeed({
    store,
    cluster: singleNodeStatus(store, () => ({ name: 'node<a>', address: '127.0.0.1:1', version: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z' })),
    log: silentLogger(),
    ...options,
  });
  const server: Server = createServer({ maxHeaderSize: LIVE_MAX_HEADER_BYTES }, (_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] === LIVE_PATH) feed.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    await feed.stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await store.close();
  });
  return { store, feed, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${LIVE_PATH}` };
}

function collect(ws: WebSocket): Client {
  const messages: Message[] = [];
  const client: Client = {
    ws,
    messages,
    bytes: 0,
    closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }))),
    pages: (page) => messages.filter((m): m is PageMessage => m.type === 'page' && (page === undefined || m.page === page)),
    last: (page) => client.pages(page).at(-1),
  };
  ws.on('message', (data, isBinary) => {
    expect(isBinary).toBe(false);
    const text = (data as Buffer).toString('utf8');
    client.bytes += text.length;
    messages.push(JSON.parse(text) as Message);
  });
  return client;
}

async function connect(h: Harness, query: string): Promise<Client> {
  const ws = new WebSocket(`${h.url}?${query}`, { perMessageDeflate: false });
  const client = collect(ws);
  cleanups.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return client;
}

/** Tries to connect; resolves with the HTTP status and body of the refusal. */
function refused(url: string): Promise<{ status: number; body: { error: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`upgrade to ${url} was accepted`));
    });
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as { error: { code: string; message: string } } }));
    });
  });
}

const page = (name: string) => name as PageName;

describe('parseLiveQuery', () => {
  it('reads repeated pages, the interval and the cluster flag', () => {
    expect(parseLiveQuery('/api/live?page=home&page=blog%2Fh%C3%A9llo&page=home&interval=0&cluster=1')).toEqual({
      pages: ['home', 'blog/héllo'],
      intervalMs: 0,
      cluster: true,
    });
    expect(parseLiveQuery('/api/live?page=a+b&_=123')).toEqual({ pages: ['a b'], intervalMs: 250, cluster: false });
  });
});

describe('the live feed', () => {
  it('sends the current state of every subscribed page on connect', async () => {
    const h = await start();
    await h.store.increment([{ page: page('home'), by: 3 }]);
    const client = await connect(h, 'page=home&page=other');
    await eventually(() => expect(client.pages()).toHaveLength(2));
    const home = client.last('home') as PageMessage;
    expect(home).toMatchObject({ type: 'page', page: 'home', count: 3, replicas: { [h.store.replicaId]: 3 } });
    expect(Math.abs(home.at - Date.now())).toBeLessThan(60_000);
    expect(client.last('other')).toMatchObject({ type: 'page', page: 'other', count: 0, replicas: {} });
    expect(client.messages.some((m) => m.type === 'cluster')).toBe(false);
  });

  it('with interval=0 sends every change, in order', async () => {
    const h = await start();
    const client = await connect(h, 'page=p&interval=0');
    await eventually(() => expect(client.pages('p')).toHaveLength(1));
    for (let i = 0; i < 50; i++) await h.store.increment([{ page: page('p'), by: 1 }]);
    await eventually(() => expect(client.last('p')?.count).toBe(50));
    expect(client.pages('p').map((m) => m.count)).toEqual(Array.from({ length: 51 }, (_, i) => i));
  });

  it('coalesces changes to at most one message per interval, ending on the latest count', async () => {
    const h = await start();
    const intervalMs = 500;
    const client = await connect(h, `page=p&page=q&interval=${intervalMs}`);
    await eventually(() => expect(client.pages()).toHaveLength(2));
    const began = Date.now();
    for (let i = 0; i < 300; i++) await h.store.increment([{ page: page('p'), by: 1 }, ...(i % 3 === 0 ? [{ page: page('q'), by: 2 }] : [])]);
    const elapsed = Date.now() - began;
    await eventually(() => {
      expect(client.last('p')?.count).toBe(300);
      expect(client.last('q')?.count).toBe(200);
    });
    for (const name of ['p', 'q']) {
      const counts = client.pages(name).map((m) => m.count);
      // Initial state, the first change at once, then at most one per interval, plus the trailing one.
      expect(counts.length).toBeLessThanOrEqual(3 + Math.ceil(elapsed / intervalMs));
      for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1] as number);
    }
    expect(client.pages('p').length).toBeLessThan(20);
  });

  it('encodes a change of a page once for all its followers over real sockets, and each gets the same run in one write', async () => {
    const h = await start();
    const names = ['s1', 's2', 's3', 's4', 's5'];
    const query = `${names.map((n) => `page=${n}`).join('&')}&interval=0`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(h, query)));
    await eventually(() => {
      for (const c of clients) expect(c.pages()).toHaveLength(names.length);
    });
    const before = h.feed.stats();
    await h.store.increment(names.map((n) => ({ page: page(n), by: 2 })));
    await eventually(() => {
      for (const c of clients) for (const n of names) expect(c.last(n)?.count).toBe(2);
    });
    const after = h.feed.stats();
    // Five pages changed, 20 followers each: five encodings (not 100), and one run joined for all 20.
    expect(after.pageFramesEncoded - before.pageFramesEncoded).toBe(names.length);
    expect(after.runsShared - before.runsShared).toBe(1);
    for (const c of clients) expect(c.pages().map((m) => m.page)).toEqual([...names, ...names]);
  });

  it('never sends pages the client did not subscribe to', async () => {
    const h = await start();
    const client = await connect(h, 'page=a&interval=0');
    for (let i = 0; i < 20; i++) await h.store.increment([{ page: page('b'), by: 1 }]);
    await h.store.increment([{ page: page('a'), by: 7 }]);
    await eventually(() => expect(client.last('a')?.count).toBe(7));
    expect(client.messages.every((m) => m.type === 'page' && m.page === 'a')).toBe(true);
    expect(h.feed.stats().pages).toBe(1);
  });

  it('refuses bad queries with HTTP 400 and the usual JSON error, changing nothing', async () => {
    const h = await start();
    await h.store.increment([{ page: page('home'), by: 1 }]);
    const before = h.store.digest();
    const tooMany = Array.from({ length: MAX_PAGES_PER_CLIENT + 1 }, (_, i) => `page=p${i}`).join('&');
    const cases: Array<[string, string]> = [
      ['', 'bad_request'],
      ['interval=10', 'bad_request'],
      ['page=', 'bad_page_name'],
      ['page=%01', 'bad_page_name'],
      [`page=${'x'.repeat(257)}`, 'bad_page_name'],
      ['page=%E0%A4%A', 'bad_request'],
      ['page=a&interval=abc', 'bad_request'],
      ['page=a&interval=-1', 'bad_request'],
      ['page=a&interval=10001', 'bad_request'],
      ['page=a&interval=1&interval=2', 'bad_request'],
      ['page=a&cluster=yes', 'bad_request'],
      [tooMany, 'bad_request'],
    ];
    for (const [query, code] of cases) {
      const refusal = await refused(`${h.url}?${query}`);
      expect(refusal.status, query).toBe(400);
      expect(refusal.body.error.code, query).toBe(code);
      expect(refusal.body.error.message.length, query).toBeGreaterThan(0);
    }
    expect(h.store.digest()).toBe(before);
    expect(h.feed.stats()).toMatchObject({ clients: 0, pages: 0 });
  });

  it('closes a client that sends anything (1003)', async () => {
    const h = await start();
    const client = await connect(h, 'page=home');
    client.ws.send('hello');
    expect((await client.closed).code).toBe(1003);
    await eventually(() => expect(h.feed.stats()).toMatchObject({ clients: 0, pages: 0 }));
  });

  it('refuses connections past the client limit with 503', async () => {
    const h = await start({ maxClients: 2 });
    await connect(h, 'page=a');
    const second = await connect(h, 'page=b');
    const refusal = await refused(`${h.url}?page=c`);
    expect(refusal).toMatchObject({ status: 503, body: { error: { code: 'too_many_clients' } } });
    second.ws.close();
    await eventually(() => expect(h.feed.stats().clients).toBe(1));
    await connect(h, 'page=c');
  });

  it('refuses clients with 503 catching_up while the node catches up at start, and takes them after', async () => {
    const gate = { ready: false };
    const h = await start({ gate });
    expect(await refused(`${h.url}?page=a`)).toMatchObject({ status: 503, body: { error: { code: 'catching_up' } } });
    expect(h.feed.stats().clients).toBe(0);
    gate.ready = true;
    await connect(h, 'page=a');
  });

  it('refuses clients past the memory budget with 503 and frees a client\'s charge when it goes', async () => {
    const long = (i: number) => `${'n'.repeat(250)}${i}`;
    const greedy = Array.from({ length: 100 }, (_, i) => `page=${long(i)}`).join('&');
    const charge = liveClientCharge({ pages: Array.from({ length: 100 }, (_, i) => page(long(i))), intervalMs: 0, cluster: false });
    // Room for one greedy client and a few one-page ones, not for two greedy ones.
    const h = await start({ maxClientBytes: charge + 3 * LIVE_CLIENT_BASE_BYTES + 3000 });
    const first = await connect(h, greedy);
    expect(h.feed.stats().chargedBytes).toBe(charge);
    const refusal = await refused(`${h.url}?${greedy}`);
    expect(refusal).toMatchObject({ status: 503, body: { error: { code: 'too_many_clients', message: expect.stringMatching(/memory budget/) } } });
    for (const name of ['a', 'b', 'c']) await connect(h, `page=${name}`);
    expect((await refused(`${h.url}?page=d`)).status).toBe(503);
    first.ws.close();
    await eventually(() => expect(h.feed.stats().chargedBytes).toBe(3 * liveClientCharge({ pages: [page('a')], intervalMs: 0, cluster: false })));
    await connect(h, greedy);
  });

  it('sends the cluster status on connect and when it changes, only to clients that asked', async () => {
    const h = await start({ clusterIntervalMs: 50 });
    const watcher = await connect(h, 'page=home&cluster=1');
    const plain = await connect(h, 'page=home&interval=0');
    await eventually(() => expect(watcher.messages.filter((m) => m.type === 'cluster')).toHaveLength(1));
    const first = watcher.messages.find((m): m is ClusterMessage => m.type === 'cluster') as ClusterMessage;
    expect(first.cluster.node.name).toBe('node<a>');
    await h.store.increment([{ page: page('home'), by: 1 }]);
    await eventually(() => {
      const updates = watcher.messages.filter((m): m is ClusterMessage => m.type === 'cluster');
      expect(updates.length).toBeGreaterThanOrEqual(2);
      expect(updates.at(-1)?.cluster.digest).toBe(h.store.digest());
      expect(updates.at(-1)?.cluster.versionVector[h.store.replicaId]).toBe(1);
    });
    await eventually(() => expect(plain.last('home')?.count).toBe(1));
    expect(plain.messages.some((m) => m.type === 'cluster')).toBe(false);
  });

  it('bounds what a stuck client holds, keeps serving the others, and catches it up once it drains', async () => {
    const h = await start();
    const pages = Array.from({ length: MAX_PAGES_PER_CLIENT }, (_, i) => `${'long-page-name-'.repeat(15)}${i}`);
    const stuck = await connect(h, `${pages.map((p) => `page=${encodeURIComponent(p)}`).join('&')}&interval=0`);
    const other = await connect(h, `page=${encodeURIComponent(pages[0] as string)}&interval=0`);
    await eventually(() => expect(stuck.pages()).toHaveLength(MAX_PAGES_PER_CLIENT));
    stuck.ws.pause();

    // Twenty other replicas per page make every message about 1.3 KB: each round is ~130 KB to the
    // stuck client, so the kernel's socket buffers fill and the bound must take over.
    const replicas = Array.from({ length: 20 }, (_, i) => i.toString(16).padStart(32, 'a') as ReplicaId);
    let maxBuffered = 0;
    let rounds = 0;
    let sawStuck = false;
    for (; rounds < 400 && !(sawStuck && rounds >= 60); rounds++) {
      const slots: Slot[] = [];
      for (const name of pages) for (const replica of replicas) slots.push({ page: page(name), replica, count: rounds + 1, seq: rounds + 1 });
      h.store.merge(slots, []);
      const stats = h.feed.stats();
      maxBuffered = Math.max(maxBuffered, stats.maxBufferedBytes);
      sawStuck ||= stats.stuck > 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const finalCount = rounds * replicas.length;
    expect(sawStuck).toBe(true);
    // The bound holds to within one message (the one that crossed it).
    expect(maxBuffered).toBeLessThanOrEqual(MAX_BUFFERED_BYTES + 4096);
    expect(h.feed.stats().dirtyPages).toBeLessThanOrEqual(MAX_PAGES_PER_CLIENT);
    // The other client was served throughout.
    await eventually(() => expect(other.last(pages[0] as string)?.count).toBe(finalCount));

    stuck.ws.resume();
    await eventually(() => {
      for (const name of pages) expect(stuck.last(name)?.count).toBe(finalCount);
    });
    for (const name of pages) {
      const counts = stuck.pages(name).map((m) => m.count);
      for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1] as number);
    }
    // Coalesced: far fewer messages than changes.
    expect(stuck.pages().length).toBeLessThan(rounds * MAX_PAGES_PER_CLIENT);
    expect(h.feed.stats().stuck).toBe(0);
  });

  it('closes a client that stays stuck past the time bound', async () => {
    const timers = new ManualTimers(Date.now());
    const h = await start({ timers, maxBufferedBytes: 16 * 1024, stuckTimeoutMs: 30_000, heartbeatIntervalMs: 1e9 });
    const stuck = await connect(h, 'page=p&interval=0');
    const healthy = await connect(h, 'page=q&interval=0');
    await eventually(() => expect(stuck.pages('p')).toHaveLength(1));
    stuck.ws.pause();
    const replicas = Array.from({ length: 50 }, (_, i) => i.toString(16).padStart(32, 'b') as ReplicaId);
    for (let round = 1; h.feed.stats().stuck === 0; round++) {
      expect(round).toBeLessThan(20_000);
      h.store.merge(replicas.map((replica) => ({ page: page('p'), replica, count: round, seq: round })), []);
      await new Promise((resolve) => setImmediate(resolve));
    }
    timers.advance(29_000);
    h.feed.tick();
    expect(h.feed.stats().clients).toBe(2);
    // Only the healthy one can answer the ping (the stuck one is exempt from that check).
    await eventually(() => expect(h.feed.stats().awaitingPong).toBe(1));
    timers.advance(1_000);
    h.feed.tick();
    expect(h.feed.stats().clients).toBe(1);
    await h.store.increment([{ page: page('q'), by: 1 }]);
    await eventually(() => expect(healthy.last('q')?.count).toBe(1));
  });

  it('pings clients and drops those that stop answering', async () => {
    const timers = new ManualTimers(Date.now());
    const h = await start({ timers });
    const alive = await connect(h, 'page=a');
    const dead = await connect(h, 'page=b');
    dead.ws.pause();
    h.feed.tick();
    expect(h.feed.stats().awaitingPong).toBe(2);
    // The live one answers; the paused one cannot read the ping.
    await eventually(() => expect(h.feed.stats().awaitingPong).toBe(1));
    h.feed.tick();
    expect(h.feed.stats().clients).toBe(1);
    await h.store.increment([{ page: page('a'), by: 1 }]);
    timers.advance(1_000);
    await eventually(() => expect(alive.last('a')?.count).toBe(1));
  });

  it('stop() closes clients with 1001, refuses new ones with 503, and is idempotent', async () => {
    const h = await start();
    const client = await connect(h, 'page=a');
    const stopping = h.feed.stop();
    expect(h.feed.stop()).toBe(stopping);
    await stopping;
    expect((await client.closed).code).toBe(1001);
    expect(await refused(`${h.url}?page=a`)).toMatchObject({ status: 503, body: { error: { code: 'shutting_down' } } });
    // Changes after stop reach nobody and break nothing.
    await h.store.increment([{ page: page('a'), by: 1 }]);
    expect(h.feed.stats().clients).toBe(0);
  });
});
