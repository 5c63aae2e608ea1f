/**
 * `Transport` over WebSockets (`ws`), at `/cluster` on the node's own HTTP server. The transport
 * owns no server: the node's upgrade dispatcher hands it upgrades through `handleUpgrade`.
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
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { formatHostPort, parseHostPort } from '../host-port.js';
import type { Connection, ConnectionHandlers, Transport } from './transport.js';

export const CLUSTER_PATH = '/cluster';
/** How long a dial may take, TCP connect and WebSocket handshake together. */
export const DIAL_TIMEOUT_MS = 5_000;
/** How long `close()` waits for peers to answer close frames before cutting the sockets. */
export const CLOSE_GRACE_MS = 1_000;
/** RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the status code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_INTERNAL_ERROR = 1011;

export interface WebSocketTransportOptions {
  /** Largest frame sent or accepted; a larger one closes its connection. */
  readonly maxFrameBytes: number;
  readonly log?: Logger;
  /** The upgrade path served and dialled. */
  readonly path?: string;
  readonly dialTimeoutMs?: number;
  readonly closeGraceMs?: number;
}

/** Cuts `reason` to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(reason: string, maxBytes: number = MAX_CLOSE_REASON_BYTES): string {
  if (Buffer.byteLength(reason, 'utf8') <= maxBytes) return reason;
  let out = '';
  let bytes = 0;
  for (const char of reason) {
    const size = Buffer.byteLength(char, 'utf8');
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

function formatRemote(host: string | undefined, port: number | undefined): string {
  const h = host ?? 'unknown';
  return h.includes(':') ? `[${h}]:${port ?? 0}` : `${h}:${port ?? 0}`;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  // A view, not a copy: the codec copies out what it keeps.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

class WebSocketConnection implements Connection {
  readonly id = randomUUID();
  private handlers: ConnectionHandlers | undefined;
  private held: Uint8Array[] = [];
  private isClosed = false;
  /** Set once closed; handed to `close` at attach when the connection closed before it. */
  private closeReason: string | undefined;
  private closeReported = false;
  private lastError: string | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly direction: 'inbound' | 'outbound',
    readonly remoteAddress: string,
    private readonly maxFrameBytes: number,
    private readonly log: Logger | undefined,
    private readonly onGone: (connection: WebSocketConnection) => void,
  ) {
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data, isBinary) => this.received(data, isBinary));
    socket.on('error', (error) => {
      // ws emits 'error' for a peer breaking the WebSocket protocol (a frame over the size
      // limit, a bad opcode …), always followed by 'close'; keep the cause for the reason.
      this.lastError = error.message;
      this.log?.warn({ connection: this.id, remote: this.remoteAddress, error: error.message }, 'closing peer connection: WebSocket protocol error');
    });
    socket.on('close', (code, reason) => {
      this.onGone(this);
      const text = reason.toString('utf8');
      this.finish(text.length > 0 ? text : this.lastError !== undefined ? `bad_frame: ${this.lastError}` : `connection lost (code ${code})`);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  attach(handlers: ConnectionHandlers): void {
    if (this.handlers !== undefined) throw new Error('connection handlers are already attached');
    this.handlers = handlers;
    const held = this.held;
    this.held = [];
    // Frames that arrived before a remote close are still delivered, then the close; a handler
    // closing the connection itself stops the rest.
    const closedBefore = this.isClosed;
    for (const frame of held) {
      if (this.isClosed && !closedBefore) break;
      this.deliver(frame);
    }
    this.reportClose();
  }

  send(frame: Uint8Array): void {
    if (this.isClosed) return;
    if (frame.byteLength > this.maxFrameBytes) {
      throw new RangeError(`frame of ${frame.byteLength} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
    this.socket.send(frame, { binary: true });
  }

  bufferedBytes(): number {
    return this.socket.bufferedAmount;
  }

  close(reason: string): void {
    this.closeWith(CLOSE_NORMAL, reason);
  }

  closeWith(code: number, reason: string): void {
    if (this.isClosed) return;
    const sent = truncateUtf8(reason);
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(code, sent);
    this.finish(reason);
  }

  private received(data: RawData, isBinary: boolean): void {
    if (this.isClosed) return;
    if (!isBinary) {
      this.log?.warn({ connection: this.id, remote: this.remoteAddress }, 'closing peer connection: text frame');
      this.closeWith(CLOSE_UNSUPPORTED_DATA, 'bad_frame: text frames are not accepted');
      return;
    }
    const frame = toBytes(data);
    if (this.handlers === undefined) this.held.push(frame);
    else this.dispatch(frame);
  }

  private dispatch(frame: Uint8Array): void {
    if (this.isClosed) return;
    this.deliver(frame);
  }

  private deliver(frame: Uint8Array): void {
    if (this.handlers === undefined) return;
    try {
      this.handlers.message(frame);
    } catch (error) {
      // A handler that throws must not take the process down: drop this connection only.
      this.log?.error({ err: error, connection: this.id }, 'peer frame handler threw; closing the connection');
      this.closeWith(CLOSE_INTERNAL_ERROR, 'internal error');
    }
  }

  private finish(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.reportClose();
  }

  private reportClose(): void {
    if (!this.isClosed || this.closeReported || this.handlers === undefined) return;
    this.closeReported = true;
    this.held = [];
    try {
      this.handlers.close(this.closeReason ?? 'closed');
    } catch (error) {
      this.log?.error({ err: error, connection: this.id }, 'peer close handler threw');
    }
  }
}

export class WebSocketTransport implements Transport {
  readonly path: string;
  private readonly maxFrameBytes: number;
  private readonly dialTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly log: Logger | undefined;
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
