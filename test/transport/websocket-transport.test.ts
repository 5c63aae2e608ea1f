import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { Connection } from '../../src/transport/transport.js';
import { MAX_CLOSE_REASON_BYTES, truncateUtf8 } from '../../src/transport/websocket-connection.js';
import { WebSocketTransport } from '../../src/transport/websocket-transport.js';
import { eventually } from '../helpers/eventually.js';
import { Recorder } from './transport-contract.js';

const MAX_FRAME_BYTES = 64 * 1024;
const FAST = { timeoutMs: 10_000, intervalMs: 2 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

async function listen(server: Server | net.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  cleanups.push(() => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

/** A node-like server: HTTP on loopback, `/cluster` upgrades to the transport. */
async function node(options: { listen?: boolean; host?: string; dialTimeoutMs?: number } = {}) {
  const transport = new WebSocketTransport({ maxFrameBytes: MAX_FRAME_BYTES, path: '/cluster', dialTimeoutMs: options.dialTimeoutMs, closeGraceMs: 100 });
  cleanups.push(() => transport.close());
  const inbound: Array<{ connection: Connection; recorder: Recorder }> = [];
  if (options.listen !== false) {
    transport.listen((connection) => {
      const recorder = new Recorder();
      connection.attach(recorder);
      inbound.push({ connection, recorder });
    });
  }
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => transport.handleUpgrade(req, socket, head));
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, host);
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { transport, server, inbound, address, port };
}

/** A raw `ws` client, bypassing the transport's own send checks. */
async function rawClient(port: number): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/cluster`, { perMessageDeflate: false });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  cleanups.push(() => ws.terminate());
  return { ws, closed };
}

describe('WebSocketTransport', () => {
  it('closes a connection that sends a frame over maxFrameBytes, and only that one', async () => {
    const server = await node();
    const client = await node({ listen: false });
    const healthy = await client.transport.dial(server.address);
    const healthyRecorder = new Recorder();
    healthy.attach(healthyRecorder);

    const bad = await rawClient(server.port);
    await eventually(() => expect(server.inbound).toHaveLength(2), FAST);
    bad.ws.send(new Uint8Array(MAX_FRAME_BYTES + 1));
    const { code } = await bad.closed;
    expect(code).toBe(1009);
    const badSide = server.inbound[1]!;
    await eventually(() => expect(badSide.recorder.closes).toHaveLength(1), FAST);
    expect(badSide.recorder.closes[0]).toMatch(/bad_frame/i);
    expect(badSide.recorder.frames).toHaveLength(0);

    // The other connection still works, and the server still accepts.
    healthy.send(Uint8Array.from([42]));
    await eventually(() => expect(server.inbound[0]!.recorder.frames).toEqual([Uint8Array.from([42])]), FAST);
    const again = await client.transport.dial(server.address);
    expect(again.closed).toBe(false);
    expect(healthyRecorder.closes).toHaveLength(0);
  });

  it('accepts a frame of exactly maxFrameBytes', async () => {
    const server = await node();
    const bad = await rawClient(server.port);
    await eventually(() => expect(server.inbound).toHaveLength(1), FAST);
    bad.ws.send(new Uint8Array(MAX_FRAME_BYTES));
    await eventually(() => expect(server.inbound[0]!.recorder.frames).toHaveLength(1), FAST);
    expect(server.inbound[0]!.recorder.frames[0]!.byteLength).toBe(MAX_FRAME_BYTES);
  });

  it('closes a connection that sends a text frame, telling the sender why', async () => {
    const server = await node();
    const raw = await rawClient(server.port);
    await eventually(() => expect(server.inbound).toHaveLength(1), FAST);
    raw.ws.send('{"type":"hello"}');
    const { code, reason } = await raw.closed;
    expect(code).toBe(1003);
    expect(reason).toMatch(/^bad_frame: text frames/);
    expect(server.inbound[0]!.recorder.frames).toHaveLength(0);
    expect(server.inbound[0]!.recorder.closes).toHaveLength(1);
    const next = await rawClient(server.port);
    expect(next.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('truncates close reasons to 123 bytes without splitting a character', async () => {
    expect(truncateUtf8('abc')).toBe('abc');
    const cut = truncateUtf8('€'.repeat(100));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(cut).toBe('€'.repeat(41));
    expect(truncateUtf8('a😀b', 3)).toBe('a');

    const server = await node();
    const client = await node({ listen: false });
    const connection = await client.transport.dial(server.address);
    connection.attach(new Recorder());
    const reason = `auth: ${'x'.repeat(500)}`;
    connection.close(reason);
    await eventually(() => expect(server.inbound[0]?.recorder.closes).toEqual([reason.slice(0, MAX_CLOSE_REASON_BYTES)]), FAST);
  });

  it('sets TCP_NODELAY on both ends', async () => {
    const spy = vi.spyOn(net.Socket.prototype, 'setNoDelay');
    const server = await node();
    const client = await node({ listen: false });
    await client.transport.dial(server.address);
    await eventually(() => expect(server.inbound).toHaveLength(1), FAST);
    // ws calls setNoDelay() with no argument, which means true.
    const enabling = spy.mock.calls.filter((args) => args[0] === undefined || args[0] === true);
    expect(enabling.length).toBeGreaterThanOrEqual(2);
    expect(spy.mock.calls.some((args) => args[0] === false)).toBe(false);
  });

  it('refuses upgrades before listen (503) and for other paths (404)', async () => {
    const server = await node({ listen: false });
    const client = await node({ listen: false });
    await expect(client.transport.dial(server.address)).rejects.toThrow(/HTTP 503/);

    const other = new WebSocketTransport({ maxFrameBytes: MAX_FRAME_BYTES, path: '/elsewhere' });
    cleanups.push(() => other.close());
    await expect(other.dial(server.address)).rejects.toThrow(/HTTP 404/);
  });

  it('rejects a dial that gets no answer within the dial timeout', async () => {
    const open = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      open.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => open.delete(socket));
      socket.resume(); // read the request, never answer it
    });
    const port = await listen(silent);
    cleanups.push(() => open.forEach((s) => s.destroy()));
    const client = await node({ listen: false, dialTimeoutMs: 200 });
    const started = Date.now();
    await expect(client.transport.dial(`127.0.0.1:${port}`)).rejects.toThrow(/no answer within 200 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // The abandoned attempt's socket is closed, not left open.
    await eventually(() => expect(open.size).toBe(0), FAST);
  });

  it('rejects malformed addresses without touching the network', async () => {
    const client = await node({ listen: false });
    for (const address of ['', 'host', 'host:', 'host:0', 'host:70000', '::1:80', '[nothex]:80', 'a/b:80', 'http://x:80']) {
      await expect(client.transport.dial(address)).rejects.toThrow(/cannot dial/);
    }
    // The rules of PEERS and discovery (src/host-port.ts), named in the message.
    for (const address of ['1.2.3:8080', 'node-:8080', '10.0.0.300:80']) {
      await expect(client.transport.dial(address)).rejects.toThrow(`cannot dial "${address}"`);
    }
  });

  it('dials IPv6 addresses in brackets', async (context) => {
    let server;
    try {
      server = await node({ host: '::1' });
    } catch {
      context.skip('no IPv6 loopback on this machine');
      return;
    }
    const client = await node({ listen: false });
    const connection = await client.transport.dial(server.address);
    expect(connection.remoteAddress).toBe(server.address);
    await eventually(() => expect(server.inbound[0]?.connection.remoteAddress).toMatch(/^\[::1\]:\d+$/), FAST);
  });

  it('bufferedBytes grows when the peer stops reading', async () => {
    // A peer that completes the WebSocket handshake and then never reads.
    const sockets: net.Socket[] = [];
    const stuck = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      socket.once('data', (chunk) => {
        const key = /sec-websocket-key: (.+)\r\n/i.exec(chunk.toString())?.[1] ?? '';
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        socket.pause();
      });
    });
    const port = await listen(stuck);
    cleanups.push(() => sockets.forEach((s) => s.destroy()));
    const client = await node({ listen: false });
    const connection = await client.transport.dial(`127.0.0.1:${port}`);
    connection.attach(new Recorder());
    const frame = new Uint8Array(MAX_FRAME_BYTES);
    // 8 MiB in one synchronous burst: far more than the kernel takes before the peer reads.
    for (let i = 0; i < 128; i++) connection.send(frame);
    expect(connection.bufferedBytes()).toBeGreaterThan(4 * MAX_FRAME_BYTES);
  });

  it('a handler that throws closes its connection only; the process and the transport carry on', async () => {
    const server = await node({ listen: false });
    const closes: string[] = [];
    server.transport.listen((connection) => {
      connection.attach({
        message() {
          throw new Error('boom');
        },
        close(reason) {
          closes.push(reason);
        },
      });
    });
    const client = await node({ listen: false });
    const connection = await client.transport.dial(server.address);
    const recorder = new Recorder();
    connection.attach(recorder);
    connection.send(Uint8Array.from([1]));
    await eventually(() => expect(recorder.closes).toEqual(['internal error']), FAST);
    expect(closes).toEqual(['internal error']);
    const second = await client.transport.dial(server.address);
    expect(second.closed).toBe(false);
  });

  it('a peer that vanishes without a close frame is reported as a lost connection', async () => {
    const server = await node();
    const raw = await rawClient(server.port);
    await eventually(() => expect(server.inbound).toHaveLength(1), FAST);
    raw.ws.terminate();
    await eventually(() => expect(server.inbound[0]!.recorder.closes).toHaveLength(1), FAST);
    expect(server.inbound[0]!.recorder.closes[0]).toMatch(/connection lost \(code 1006\)/);
  });

  it('close() is idempotent and refuses further listen and dial', async () => {
    const server = await node();
    await Promise.all([server.transport.close(), server.transport.close()]);
    expect(() => server.transport.listen(() => {})).toThrow(/closed/);
    await expect(server.transport.dial(server.address)).rejects.toThrow(/closed/);
  });
});
