/**
 * The memory budget (`MEMORY_BUDGET_MB`): every queue a client or a peer can fill gets a share of
 * it, so a node stays within the budget under any flood and answers 503 (or closes a socket)
 * past a bound instead of growing until the OOM killer restarts it under a new replica id.
 * Pure: the composition root turns the configured budget into the bounds it hands each part.
 *
 * The default fits fly.toml's 256 MB machine: 160 MB for what clients and peers can make the node
 * hold, the rest for the V8 baseline (~60 MB RSS idle), SQLite's page cache and the kernel's
 * socket buffers. Shares, and the cost each bound charges, measured on this machine:
 */

/** The default budget, in MiB: for a 256 MB machine. */
export const DEFAULT_MEMORY_BUDGET_MB = 160;
export const MIN_MEMORY_BUDGET_MB = 32;
export const MAX_MEMORY_BUDGET_MB = 65_536;

/** Group commit: 10 % of the budget, ~200 bytes per queued increment (name, object, promise). */
const QUEUE_SHARE = 0.1;
export const BYTES_PER_QUEUED_INCREMENT = 200;
/**
 * Request bodies being read, parsed and committed: 20 %. A parsed JSON batch holds about four
 * times its bytes (strings and objects), so each body is charged 4× its declared length.
 */
const BODY_SHARE = 0.2;
export const BODY_EXPANSION = 4;
/** Live-feed clients and their subscriptions: 30 % (the feed charges each client, see live-feed.ts). */
const LIVE_SHARE = 0.3;
/** Peer send buffers: 20 %, spread over up to this many peers (the mesh's size on Fly.io). */
const PEER_SHARE = 0.2;
export const BUDGETED_PEERS = 8;

export interface MemoryBounds {
  readonly budgetBytes: number;
  /** Increments waiting for a commit, at most (503 `overloaded` past it). */
  readonly maxQueuedIncrements: number;
  /** Bytes of request bodies in flight, at most, each charged BODY_EXPANSION × its length (503 past it). */
  readonly bodyBytesInFlight: number;
  /** Bytes the live feed may charge its clients (new ones get 503 `too_many_clients` past it). */
  readonly liveFeedBytes: number;
  /** A peer's unsent bytes, at most (past it, deltas to it are skipped; anti-entropy catches up). */
  readonly peerSendBufferBytes: number;
}

export function memoryBounds(budgetMb: number, options: { readonly maxPeerSendBufferBytes?: number } = {}): MemoryBounds {
  const budgetBytes = budgetMb * 1024 * 1024;
  const perPeer = Math.floor((budgetBytes * PEER_SHARE) / BUDGETED_PEERS);
  return {
    budgetBytes,
    maxQueuedIncrements: Math.floor((budgetBytes * QUEUE_SHARE) / BYTES_PER_QUEUED_INCREMENT),
    bodyBytesInFlight: Math.floor((budgetBytes * BODY_SHARE) / BODY_EXPANSION),
    liveFeedBytes: Math.floor(budgetBytes * LIVE_SHARE),
    peerSendBufferBytes: options.maxPeerSendBufferBytes === undefined ? perPeer : Math.min(perPeer, options.maxPeerSendBufferBytes),
  };
}
