/**
 * One `upgrade` listener per HTTP server, routing WebSocket upgrades by path: on the public port
 * the live page feed, on the cluster port peer replication (`/cluster`). Anything else is answered
 * 404 and its socket closed, so a stray upgrade never holds a connection open.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { headerBytes, MAX_HEADER_BYTES } from './server-limits.js';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export class UpgradeDispatcher {
  private readonly handlers = new Map<string, { handler: UpgradeHandler; maxHeaderBytes: number }>();

  /**
   * Routes upgrades of exactly `path` (query ignored) to `handler`; requests with more than
   * `maxHeaderBytes` of request line and headers (default MAX_HEADER_BYTES) are refused with
   * 431. Returns an unmount function.
   */
  mount(path: string, handler: UpgradeHandler, options: { readonly maxHeaderBytes?: number } = {}): () => void {
    if (this.handlers.has(path)) throw new Error(`an upgrade handler is already mounted at ${path}`);
    this.handlers.set(path, { handler, maxHeaderBytes: options.maxHeaderBytes ?? MAX_HEADER_BYTES });
    return () => {
      if (this.handlers.get(path)?.handler === handler) this.handlers.delete(path);
    };
  }

  /** The server's `upgrade` listener. */
  readonly dispatch = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    const mounted = this.handlers.get(query === -1 ? url : url.slice(0, query));
    if (mounted === undefined) {
      socket.once('error', () => socket.destroy());
      socket.once('finish', () => socket.destroy());
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (headerBytes(req) > mounted.maxHeaderBytes) {
      socket.once('error', () => socket.destroy());
      socket.once('finish', () => socket.destroy());
      socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    mounted.handler(req, socket, head);
  };
}
