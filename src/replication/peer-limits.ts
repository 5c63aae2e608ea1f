/**
 * Per-source limits on what peers can make this node hold: new replica ids learned from one source
 * (a token bucket per remote host), and unauthenticated sockets per remote host. A "source" is the
 * remote host of the connection, not the replica id a peer announces: a peer can announce a new id
 * on every connection, it cannot change its address as easily.
 */

/** New replica ids one source may introduce at once… */
export const NEW_REPLICA_BURST = 1_024;
/** …and then per second. An honest cluster mints an id per node start after data loss, not per second. */
export const NEW_REPLICAS_PER_SECOND = 10;
/** Sources whose budgets are remembered; past it the oldest is forgotten (it starts full again). */
export const MAX_TRACKED_SOURCES = 1_024;
/** Sockets from one host still in the handshake; the next one is closed at once. */
export const MAX_HANDSHAKES_PER_SOURCE = 16;
/** A session that has not finished its handshake this long after the socket opened is closed. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;

/** The host of `host:port` or `[v6]:port` (the whole string when it has no port). */
export function sourceOf(remoteAddress: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(remoteAddress);
  if (bracketed !== null) return bracketed[1]!;
  const colon = remoteAddress.lastIndexOf(':');
  return colon > 0 && remoteAddress.indexOf(':') === colon ? remoteAddress.slice(0, colon) : remoteAddress;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A token bucket per source: `take` spends one token when there is one. */
export class SourceBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly burst: number = NEW_REPLICA_BURST,
    private readonly perSecond: number = NEW_REPLICAS_PER_SECOND,
    private readonly maxSources: number = MAX_TRACKED_SOURCES,
  ) {}

  take(source: string, now: number): boolean {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = { tokens: this.burst, at: now };
    } else {
      this.buckets.delete(source); // re-inserted below: the map stays in order of last use
      bucket.tokens = Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * this.perSecond);
      bucket.at = now;
    }
    this.buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
