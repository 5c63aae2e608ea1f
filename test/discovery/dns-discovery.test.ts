import { afterEach, describe, expect, it } from 'vitest';
import { DiscoveryLoop } from '../../src/discovery/discovery.js';
import { DnsDiscovery, dnsServerProblem } from '../../src/discovery/dns-discovery.js';
import { AppError, isAppError } from '../../src/errors.js';
import { a, aaaa, srv, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { recordingLog } from './log-recorder.js';

const PORT = 8080;
const TIMEOUT_MS = 300;
/** A resolution that does not answer must end within its timeout plus scheduling slack. */
const HANG_BOUND_MS = TIMEOUT_MS + 1_500;

const servers: TestDnsServer[] = [];
const loops: DiscoveryLoop[] = [];

afterEach(async () => {
  await Promise.all(loops.splice(0).map((loop) => loop.stop()));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function server(records: Parameters<typeof startDnsServer>[0] = {}): Promise<TestDnsServer> {
  const started = await startDnsServer(records);
  servers.push(started);
  return started;
}

/**
 * Lookups that must succeed get a generous bound (a loaded 2-core CI machine can take longer than
 * the short one); the tests of giving up pass TIMEOUT_MS explicitly.
 */
const ANSWER_TIMEOUT_MS = 5_000;

function discoveryFor(dns: TestDnsServer, name = 'app.internal', timeoutMs = ANSWER_TIMEOUT_MS): DnsDiscovery {
  return new DnsDiscovery({ name, port: PORT, server: dns.server, timeoutMs });
}

function loopFor(discovery: DnsDiscovery) {
  const calls: string[][] = [];
  const log = recordingLog();
  const loop = new DiscoveryLoop({ discovery, intervalMs: 0, onPeers: (peers) => void calls.push(peers), log });
  loops.push(loop);
  return { loop, calls, log };
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

describe('DnsDiscovery against a real DNS server on a non-53 loopback port', () => {
  it('finds A records, each on the node port', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.4'), a('127.0.0.2'), a('127.0.0.3')] } });
    expect(dns.port).not.toBe(53);
    expect(dns.server).toBe(`127.0.0.1:${dns.port}`);
    expect(await discoveryFor(dns).resolve()).toEqual(['127.0.0.2:8080', '127.0.0.3:8080', '127.0.0.4:8080']);
    // The resolver really asked this server, for SRV first-class and A/AAAA together.
    expect(dns.queries.map((query) => query.type).sort()).toEqual(['A', 'AAAA', 'SRV']);
  });

  it('finds AAAA records, written [addr]:port, together with A records', async () => {
    const dns = await server({ records: { 'app.internal': [aaaa('::1'), aaaa('fdaa:0:1:a7b::2'), a('127.0.0.2')] } });
    expect(await discoveryFor(dns).resolve()).toEqual(['127.0.0.2:8080', '[::1]:8080', '[fdaa:0:1:a7b::2]:8080']);
  });

  it('is case-insensitive about the name and accepts a trailing dot', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2')] } });
    expect(await discoveryFor(dns, 'APP.Internal.').resolve()).toEqual(['127.0.0.2:8080']);
  });

  it('prefers SRV records: each target resolved through the same server, on its own port', async () => {
    const dns = await server({
      records: {
        'app.internal': [
          srv('node-1.app.internal', 9001),
          srv('node-2.app.internal.', 9002, { priority: 10, weight: 5 }),
          srv('node-6.app.internal', 9006),
          srv('127.0.0.9', 9009),
          srv('node-1.app.internal', 9011),
          srv('gone.app.internal', 9100),
          // Ignored once SRV records exist:
          a('127.0.0.99'),
        ],
        'node-1.app.internal': [a('127.0.0.2')],
        'node-2.app.internal': [a('127.0.0.3'), a('127.0.0.4')],
        'node-6.app.internal': [aaaa('::1')],
        'gone.app.internal': [],
      },
    });
    expect(await discoveryFor(dns).resolve()).toEqual([
      '127.0.0.2:9001',
      '127.0.0.2:9011',
      '127.0.0.3:9002',
      '127.0.0.4:9002',
      '127.0.0.9:9009',
      '[::1]:9006',
    ]);
    expect(dns.queries.filter((query) => query.name.startsWith('127.0.0.9'))).toEqual([]);
  });

  it('treats NXDOMAIN and a name without records as nobody there', async () => {
    const dns = await server({ records: { 'empty.internal': [] } });
    expect(await discoveryFor(dns, 'nobody.internal').resolve()).toEqual([]);
    expect(await discoveryFor(dns, 'empty.internal').resolve()).toEqual([]);
  });

  it('fails, rather than answering empty, on SERVFAIL', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2')] }, mode: 'servfail' });
    await expect(discoveryFor(dns).resolve()).rejects.toMatchObject({ code: 'discovery_failed', expose: false, message: expect.stringMatching(/failed: ESERVFAIL$/) });
  });

  it('fails when an SRV target cannot be resolved, instead of dropping that target', async () => {
    const dns = await server({ records: { 'app.internal': [srv('node-1.app.internal', 9001)], 'node-1.app.internal': [a('127.0.0.2')] } });
    const discovery = discoveryFor(dns);
    expect(await discovery.resolve()).toEqual(['127.0.0.2:9001']);
    dns.setMode('servfail');
    await expect(discovery.resolve()).rejects.toBeInstanceOf(AppError);
    await expect(discovery.resolve()).rejects.toMatchObject({ code: 'discovery_failed', message: expect.stringContaining('ESERVFAIL') });
  });

  it('gives up on a server that does not answer within the timeout', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2')] }, mode: 'drop' });
    const { result, ms } = await timed(() => discoveryFor(dns, 'app.internal', TIMEOUT_MS).resolve().then(() => undefined, (error: unknown) => error));
    expect(result).toMatchObject({ code: 'discovery_failed' });
    expect((result as Error).message).toContain(`gave no answer within ${TIMEOUT_MS} ms`);
    expect(ms).toBeLessThan(HANG_BOUND_MS);
    expect(dns.queries.length).toBeGreaterThan(0);
  });

  it('falls back to TCP when the answer does not fit in a UDP datagram', async () => {
    const many = Array.from({ length: 120 }, (_, index) => `127.0.${Math.floor(index / 250)}.${(index % 250) + 2}`);
    const dns = await server({ records: { 'big.internal': many.map((address) => a(address)) } });
    expect(dns.tcp).toBe(true);
    const found = await discoveryFor(dns, 'big.internal').resolve();
    expect(found).toHaveLength(120);
    expect(dns.queries.some((query) => query.transport === 'tcp' && query.type === 'A')).toBe(true);
  });

  it('works with an IPv6 DNS server written [::1]:port', async () => {
    const dns = await server({ host: '::1', records: { 'app.internal': [aaaa('::1')] } });
    expect(dns.server).toBe(`[::1]:${dns.port}`);
    expect(await discoveryFor(dns).resolve()).toEqual(['[::1]:8080']);
  });

  it('rejects at once when aborted', async () => {
    const dns = await server({ mode: 'drop' });
    const controller = new AbortController();
    const resolution = discoveryFor(dns, 'app.internal', 10_000).resolve({ signal: controller.signal });
    controller.abort(new Error('stopping'));
    const { ms } = await timed(() => resolution.catch(() => undefined));
    await expect(resolution).rejects.toThrow('stopping');
    expect(ms).toBeLessThan(1_000);
  });
});

describe('DiscoveryLoop over DNS', () => {
  it('sees a record added on the next tick and drops one removed', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2'), a('127.0.0.3')] } });
    const { loop, calls } = loopFor(discoveryFor(dns));
    await loop.tick();
    expect(calls).toEqual([['127.0.0.2:8080', '127.0.0.3:8080']]);

    dns.set('app.internal', [a('127.0.0.2'), a('127.0.0.3'), a('127.0.0.4')]);
    await loop.tick();
    expect(calls.at(-1)).toEqual(['127.0.0.2:8080', '127.0.0.3:8080', '127.0.0.4:8080']);

    dns.set('app.internal', [a('127.0.0.3'), a('127.0.0.4')]);
    await loop.tick();
    expect(calls.at(-1)).toEqual(['127.0.0.3:8080', '127.0.0.4:8080']);

    await loop.tick();
    expect(calls).toHaveLength(3);

    dns.delete('app.internal');
    await loop.tick();
    expect(calls.at(-1)).toEqual([]);
  });

  it('switches between A records and SRV records as the zone changes', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2')], 'n.internal': [a('127.0.0.3')] } });
    const { loop, calls } = loopFor(discoveryFor(dns));
    await loop.tick();
    dns.set('app.internal', [a('127.0.0.2'), srv('n.internal', 9000)]);
    await loop.tick();
    expect(calls).toEqual([['127.0.0.2:8080'], ['127.0.0.3:9000']]);
  });

  it('keeps the previous list while the server is down, warns once, and never hangs', async () => {
    const dns = await server({ records: { 'app.internal': [a('127.0.0.2'), a('127.0.0.3')] } });
    const port = dns.port;
    const { loop, calls, log } = loopFor(discoveryFor(dns, 'app.internal', TIMEOUT_MS));
    await loop.tick();
    expect(calls).toEqual([['127.0.0.2:8080', '127.0.0.3:8080']]);

    await dns.stop();
    for (let i = 0; i < 4; i += 1) {
      const { ms } = await timed(() => loop.tick());
      expect(ms).toBeLessThan(HANG_BOUND_MS);
    }
    expect(calls).toHaveLength(1);
    expect(log.warnings()).toHaveLength(1);
    expect(log.warnings()[0]).toMatchObject({ message: 'peer discovery failed; keeping the previous peer list', fields: { kept: 2 } });
    expect(loop.status().peers).toEqual(['127.0.0.2:8080', '127.0.0.3:8080']);

    // Back on the same port with a different zone: the next tick recovers and reports it.
    const back = await server({ port, records: { 'app.internal': [a('127.0.0.4')] } });
    expect(back.port).toBe(port);
    await loop.tick();
    expect(calls.at(-1)).toEqual(['127.0.0.4:8080']);
    expect(log.entries.at(-1)).toMatchObject({ level: 'info', message: 'peer discovery recovered' });
  });

  it('keeps the previous list while the server does not answer, warns once, and each tick is bounded', async () => {
    const dns = await server({ records: { 'app.internal': [aaaa('::1')] } });
    const { loop, calls, log } = loopFor(discoveryFor(dns, 'app.internal', TIMEOUT_MS));
    await loop.tick();
    dns.setMode('drop');
    for (let i = 0; i < 3; i += 1) {
      const { ms } = await timed(() => loop.tick());
      expect(ms).toBeLessThan(HANG_BOUND_MS);
    }
    dns.setMode('servfail');
    await loop.tick();
    await loop.tick();
    expect(calls).toEqual([['[::1]:8080']]);
    // One warning for the timeouts, one for the SERVFAILs.
    expect(log.warnings().map((entry) => String((entry.fields.err as Error).message))).toEqual([
      expect.stringContaining('gave no answer'),
      expect.stringContaining('ESERVFAIL'),
    ]);
  });

  it('stop() during a resolution that gets no answer returns promptly', async () => {
    const dns = await server({ mode: 'drop' });
    const { loop } = loopFor(discoveryFor(dns, 'app.internal', 10_000));
    const tick = loop.tick();
    const { ms } = await timed(() => loop.stop());
    await tick;
    expect(ms).toBeLessThan(1_000);
  });
});

describe('DnsDiscovery options', () => {
  it.each([
    [{ name: 'bad name', port: 8080, timeoutMs: 100 }, /DNS discovery name/],
    [{ name: 'app.internal', port: 0, timeoutMs: 100 }, /port 0 is outside 1–65535/],
    [{ name: 'app.internal', port: 8080, timeoutMs: 0 }, /timeout must be a positive/],
    [{ name: 'app.internal', port: 8080, timeoutMs: 100, server: 'dns.example' }, /must be an IP address/],
  ])('refuses %j with bad_config', (options, message) => {
    let caught: unknown;
    try {
      new DnsDiscovery(options);
    } catch (error) {
      caught = error;
    }
    expect(isAppError(caught) && caught.code).toBe('bad_config');
    expect((caught as Error).message).toMatch(message);
  });

  it.each(['10.0.0.53', '127.0.0.1:5353', '::1', 'fdaa::3', '[::1]:5353'])('accepts DNS server %s', (text) => {
    expect(dnsServerProblem(text)).toBeUndefined();
  });

  it.each([
    ['dns.example', /must be an IP address/],
    ['dns.example:53', /must be an IP address/],
    ['127.0.0.1:0', /outside 1–65535/],
    ['127.0.0.1:', /no port/],
    ['[::1]', /no port/],
    ['300.0.0.1', /must be an IP address|not a valid IPv4/],
  ])('refuses DNS server %s', (text, message) => {
    expect(dnsServerProblem(text)).toMatch(message);
  });
});
