/**
 * One `upgrade` listener for the node's HTTP server, routing WebSocket upgrades by path: peer
 * replication mounts `/cluster`, the live page feed its own path. Anything else is refused and
 * its socket destroyed, so a stray upgrade never holds a connection open.
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
      socket.destroy();
      return;
    }
    handler(req, socket, head);
  };
}
