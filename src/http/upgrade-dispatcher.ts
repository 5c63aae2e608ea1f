/**
 * One `upgrade` listener per HTTP server, routing WebSocket upgrades by path: on the public port
 * the live page feed, on the cluster port peer replication (`/cluster`). Anything else is answered
 * 404 and its socket closed, so a stray upgrade never holds a connection open.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export class UpgradeDispatcher {
  private readonly handlers = new Map<string, UpgradeHandler>();

  /** Routes upgrades of exactly `path` (query ignored) to `handler`. Returns an unmount function. */
  mount(path: string, handler: UpgradeHandler): () => void {
    if (this.handlers.has(path)) throw new Error(`an upgrade handler is already mounted at ${path}`);
    this.handlers.set(path, handler);
    return () => {
      if (this.handlers.get(path) === handler) this.handlers.delete(path);
    };
  }

  /** The server's `upgrade` listener. */
  readonly dispatch = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    const handler = this.handlers.get(query === -1 ? url : url.slice(0, query));
    if (handler === undefined) {
      socket.once('error', () => socket.destroy());
      socket.once('finish', () => socket.destroy());
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    handler(req, socket, head);
  };
}
