/**
 * A subscriber to one node's live feed (`GET /api/live?page=…&interval=0`, a WebSocket of JSON
 * text frames). The node pushes `{"type":"page","page","count","replicas","at"}` once per page on
 * connect and after every change; we note the local time each frame arrives and resolve the
 * waits whose expected count it reaches. Nothing here polls.
 */
import WebSocket from 'ws';

/** How long the feed may take to open and send its first frames. */
export const FEED_OPEN_TIMEOUT_MS = 10_000;

interface Wait {
  readonly target: number;
  readonly resolve: (at: number) => void;
}

export class LiveFeedClient {
  private readonly socket: WebSocket;
  private readonly counts = new Map<string, number>();
  /** Per page, waits in the order they were registered (targets ascending per page). */
  private readonly waits = new Map<string, Wait[]>();
  /** Frames that did not parse as a page frame (reported, not fatal). */
  badFrames = 0;
  frames = 0;
  /** True once the server closed the feed (or it failed) before close() was called. */
  closed = false;
  private closing = false;
  private readonly opened: Promise<void>;

  private constructor(url: string, pages: readonly string[]) {
    this.socket = new WebSocket(url, { perMessageDeflate: false });
    const initial = new Set(pages);
    this.opened = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`live feed ${url.slice(0, 120)} sent no initial frames within ${FEED_OPEN_TIMEOUT_MS} ms`)), FEED_OPEN_TIMEOUT_MS);
      this.socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      this.socket.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`live feed refused: HTTP ${res.statusCode}`));
      });
      this.socket.on('close', () => {
        if (!this.closing) this.closed = true;
      });
      this.socket.on('message', (data, isBinary) => {
        const at = performance.now();
        this.frames++;
        let frame: { type?: unknown; page?: unknown; count?: unknown };
        try {
          frame = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data)) as typeof frame;
        } catch {
          this.badFrames++;
          return;
        }
        if (frame.type !== 'page') return;
        if (typeof frame.page !== 'string' || typeof frame.count !== 'number') {
          this.badFrames++;
          return;
        }
        this.onCount(frame.page, frame.count, at);
        if (initial.size > 0) {
          initial.delete(frame.page);
          if (initial.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
    });
  }

  /** Opens a feed on `baseUrl` (http://host:port) for `pages`; resolves once each page's first frame arrived. */
  static async open(baseUrl: string, pages: readonly string[]): Promise<LiveFeedClient> {
    const query = pages.map((p) => `page=${encodeURIComponent(p)}`).join('&');
    const client = new LiveFeedClient(`${baseUrl.replace(/^http/, 'ws')}/api/live?${query}&interval=0`, pages);
    try {
      await client.opened;
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  private onCount(page: string, count: number, at: number): void {
    const previous = this.counts.get(page) ?? 0;
    if (count > previous) this.counts.set(page, count);
    const waits = this.waits.get(page);
    if (waits === undefined) return;
    let served = 0;
    while (served < waits.length && (waits[served] as Wait).target <= count) (waits[served++] as Wait).resolve(at);
    if (served > 0) waits.splice(0, served);
    if (waits.length === 0) this.waits.delete(page);
  }

  /**
   * Calls `onReached(at)` once the feed reports `page` at `target` or more (at once if it has).
   * Waits on a page must be registered in ascending target order.
   */
  whenCount(page: string, target: number, onReached: (at: number) => void): void {
    if ((this.counts.get(page) ?? 0) >= target) {
      onReached(performance.now());
      return;
    }
    const waits = this.waits.get(page);
    if (waits === undefined) this.waits.set(page, [{ target, resolve: onReached }]);
    else waits.push({ target, resolve: onReached });
  }

  count(page: string): number {
    return this.counts.get(page) ?? 0;
  }

  close(): void {
    this.closing = true;
    this.socket.removeAllListeners('message');
    this.socket.on('error', () => {});
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
  }
}
