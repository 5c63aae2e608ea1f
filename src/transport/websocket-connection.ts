/**
 * One peer link over a `ws` socket: binary frames only (a text frame closes it with 1003), frames
 * over the limit refused on send, a handler that throws closes this connection only (1011).
 * Frames held until attach: see `inbox.ts`.
 */
import { randomUUID } from 'node:crypto';
import type { Log } from '../log.js';
import { WebSocket, type RawData } from 'ws';
import { Inbox } from './inbox.js';
import type { Connection, ConnectionHandlers } from './transport.js';

/** RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the status code. */
export const MAX_CLOSE_REASON_BYTES = 123;

export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_UNSUPPORTED_DATA = 1003;
export const CLOSE_INTERNAL_ERROR = 1011;

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

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  // A view, not a copy: the codec copies out what it keeps.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A live socket wrapped as a `Connection`; `onGone` tells the transport it closed. */
export class WebSocketConnection implements Connection {
  readonly id = randomUUID();
  private readonly inbox: Inbox;
  private isClosed = false;
  private lastError: string | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly direction: 'inbound' | 'outbound',
    readonly remoteAddress: string,
    private readonly maxFrameBytes: number,
    private readonly log: Log | undefined,
    private readonly onGone: (connection: WebSocketConnection) => void,
  ) {
    this.inbox = new Inbox({
      message: (handlers, frame) => this.deliver(handlers, frame),
      close: (handlers, reason) => {
        try {
          handlers.close(reason);
        } catch (error) {
          this.log?.error({ err: error, connection: this.id }, 'peer close handler threw');
        }
      },
    });
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
    this.inbox.attach(handlers);
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

  pause(): void {
    if (!this.isClosed) this.socket.pause();
  }

  resume(): void {
    if (!this.isClosed) this.socket.resume();
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
    this.inbox.receive(toBytes(data));
  }

  private deliver(handlers: ConnectionHandlers, frame: Uint8Array): void {
    try {
      handlers.message(frame);
    } catch (error) {
      // A handler that throws must not take the process down: drop this connection only.
      this.log?.error({ err: error, connection: this.id }, 'peer frame handler threw; closing the connection');
      this.closeWith(CLOSE_INTERNAL_ERROR, 'internal error');
    }
  }

  private finish(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.inbox.close(reason);
  }
}
