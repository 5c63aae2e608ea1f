/**
 * `Transport` over WebSockets (`ws`), at `/cluster` on the node's cluster port (CLUSTER_PORT, its
 * own HTTP server, never the public one). The transport owns no server: the cluster server's
 * upgrade dispatcher hands it upgrades through `handleUpgrade`; `dial` reaches peers' cluster ports.
 *
 * Choices, and why:
 * - perMessageDeflate off on both ends: measured here it makes a round trip ~5× slower, and
 *   frames are small binary already.
 * - `maxPayload` = the protocol's frame limit on both ends: ws refuses a larger frame while
 *   reading its header, before buffering it, and closes that connection (1009) only.
 * - Binary frames only: a text frame is a protocol violation and closes the connection (1003).
 * - TCP_NODELAY: ws sets it on every socket it wraps (`setNoDelay()` in `setSocket`); the tests
 *   check it, since a delayed ACK would add up to 40 ms to a one-frame round trip.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Log } from '../log.js';
import { WebSocket, WebSocketServer } from 'ws';
import { formatHostPort, parseHostPort } from '../host-port.js';
import type { Connection, Transport } from './transport.js';
import { CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, WebSocketConnection } from './websocket-connection.js';

export const CLUSTER_PATH = '/cluster';
/** How long a dial may take, TCP connect and WebSocket handshake together. */
export const DIAL_TIMEOUT_MS = 5_000;
/** How long `close()` waits for peers to answer close frames before cutting the sockets. */
export const CLOSE_GRACE_MS = 1_000;

export interface WebSocketTransportOptions {
  /** Largest frame sent or accepted; a larger one closes its connection. */
  readonly maxFrameBytes: number;
  readonly log?: Log;
  /** The upgrade path served and dialled. */
  readonly path?: string;
  readonly dialTimeoutMs?: number;
  readonly closeGraceMs?: number;
}

function formatRemote(host: string | undefined, port: number | undefined): string {
  const h = host ?? 'unknown';
  return h.includes(':') ? `[${h}]:${port ?? 0}` : `${h}:${port ?? 0}`;
}

export class WebSocketTransport implements Transport {
  readonly path: string;
  private readonly maxFrameBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly log: Log | undefined;
  private readonly server: WebSocketServer;
  private readonly connections = new Set<WebSocketConnection>();
  /** Sockets of dials still in their handshake, cut on close. */
  private readonly dialling = new Set<WebSocket>();
  private onConnection: ((connection: Connection) => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: WebSocketTransportOptions) {
    this.maxFrameBytes = options.maxFrameBytes;
    this.path = options.path ?? CLUSTER_PATH;
    this.dialTimeoutMs = options.dialTimeoutMs ?? DIAL_TIMEOUT_MS;
    this.closeGraceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
    this.log = options.log;
    this.server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: this.maxFrameBytes, clientTracking: false });
  }

  listen(onConnection: (connection: Connection) => void): void {
    if (this.closing !== undefined) throw new Error('the transport is closed');
    this.onConnection = onConnection;
  }

  /** The HTTP server's upgrade handler for `path`. Refuses (503) until `listen` and after `close`. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = request.url ?? '';
    const query = url.indexOf('?');
    if ((query === -1 ? url : url.slice(0, query)) !== this.path) {
      refuse(socket, 404, 'Not Found');
      return;
    }
    if (this.onConnection === undefined || this.closing !== undefined) {
      refuse(socket, 503, 'Service Unavailable');
      return;
    }
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const onConnection = this.onConnection;
      if (onConnection === undefined || this.closing !== undefined) {
        ws.close(CLOSE_GOING_AWAY, 'shutting_down');
        return;
      }
      const remote = formatRemote(request.socket.remoteAddress, request.socket.remotePort);
      const connection = this.track(ws, 'inbound', remote);
      try {
        onConnection(connection);
      } catch (error) {
        this.log?.error({ err: error, remote }, 'inbound connection handler threw');
        connection.closeWith(CLOSE_INTERNAL_ERROR, 'internal error');
      }
    });
  }

  dial(address: string): Promise<Connection> {
    if (this.closing !== undefined) return Promise.reject(new Error('the transport is closed'));
    // The rules PEERS and discovery were checked against (host-port.ts); anything else is refused
    // before touching the network.
    const target = parseHostPort(address);
    if ('error' in target) return Promise.reject(new Error(`cannot dial ${target.error}`));
    return new Promise<Connection>((resolve, reject) => {
      const ws = new WebSocket(`ws://${formatHostPort(target)}${this.path}`, { perMessageDeflate: false, maxPayload: this.maxFrameBytes });
      this.dialling.add(ws);
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.dialling.delete(ws);
        ws.terminate();
        reject(new Error(`cannot dial ${address}: ${message}`));
      };
      const timer = setTimeout(() => fail(`no answer within ${this.dialTimeoutMs} ms`), this.dialTimeoutMs);
      // `on`, not `once`: terminating a socket mid-handshake emits one more error, and an
      // 'error' without a listener would crash the process. After open the connection listens too.
      ws.on('error', (error) => fail(error.message));
      ws.once('unexpected-response', (_request, response) => {
        fail(`the peer answered HTTP ${response.statusCode ?? '?'} instead of upgrading`);
      });
      ws.once('close', () => fail('closed during the handshake'));
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.dialling.delete(ws);
        if (this.closing !== undefined) {
          ws.terminate();
          reject(new Error('the transport is closed'));
          return;
        }
        // Tracked synchronously on open, so frames arriving next are held for attach.
        resolve(this.track(ws, 'outbound', address));
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.onConnection = undefined;
    for (const ws of this.dialling) ws.terminate();
    this.dialling.clear();
    const open = [...this.connections];
    const gone = open.map((connection) =>
      connection.socket.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => connection.socket.once('close', () => resolve())),
    );
    for (const connection of open) connection.closeWith(CLOSE_GOING_AWAY, 'shutting_down: transport closed');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.closeGraceMs);
    });
    await Promise.race([Promise.all(gone), grace]);
    clearTimeout(timer);
    // Peers that did not answer the close frame in time are cut.
    for (const connection of open) connection.socket.terminate();
    await Promise.all(gone);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(ws: WebSocket, direction: 'inbound' | 'outbound', remote: string): WebSocketConnection {
    const connection = new WebSocketConnection(ws, direction, remote, this.maxFrameBytes, this.log, (c) => this.connections.delete(c));
    this.connections.add(connection);
    return connection;
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
