/**
 * The session lifecycle: every session from attach to close, and the one open session per peer
 * replica. A connection (dialled by the directory, or accepted) becomes a session here; its
 * frames go through `PeerSession.receive`, and what comes out is either handled here (open, the
 * duplicate rule, refusals and their logs) or handed to `onMessage`. Two nodes that dial each
 * other keep one connection: the one dialled by the lower replica id.
 */
import type { ReplicaId } from '../ids.js';
import type { Log } from '../log.js';
import type { RejectCode } from '../protocol/messages.js';
import type { Timers } from '../timers.js';
import type { Connection } from '../transport/transport.js';
import type { DialTarget, PeerDirectory } from './peer-directory.js';
import { PeerSession, type SessionContext, type SessionEvent } from './peer-session.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_HANDSHAKES_PER_SOURCE, sourceOf } from './peer-limits.js';
import type { ReplicationMetrics } from './replication-metrics.js';

/** A checked message of an open session, for the replicator's parts. */
export type SessionMessage = Exclude<SessionEvent, { kind: 'none' | 'closed' | 'open' }>;

export interface SessionTableOptions {
  readonly context: SessionContext;
  readonly timers: Timers;
  readonly log: Log;
  readonly metrics: ReplicationMetrics;
  readonly directory: Pick<PeerDirectory, 'sessionStarted' | 'identified' | 'sessionOpened' | 'sessionClosed' | 'uncovered'>;
  /** The session was kept as the one to its peer: greet it (presence, version vector). */
  readonly onOpen: (session: PeerSession) => void;
  /** A message of an open session; a throw closes that session only. */
  readonly onMessage: (session: PeerSession, message: SessionMessage) => void;
  /** The session closed (for the parts holding per-session work). */
  readonly onClose: (session: PeerSession) => void;
  /** Work for one session threw (counted by the caller); the session was closed. */
  readonly onFailure?: () => void;
  readonly handshakeTimeoutMs?: number;
  readonly maxHandshakesPerSource?: number;
  /** Whether a new inbound session (not one replacing a duplicate) may stay; false: refused as `full` (bounded degree, active-view.ts). */
  readonly admitsInbound?: (session: PeerSession) => boolean;
}

/** How long a session must have been silent before this side pings it (see `heartbeat`). */
export function idleBeforePing(direction: Connection['direction'], intervalMs: number, timeoutMs: number): number {
  return direction === 'outbound' ? intervalMs : Math.min(3 * intervalMs, (intervalMs + timeoutMs) / 2);
}

export class SessionTable {
  /** Every session from attach to close, open or not. */
  private readonly all = new Set<PeerSession>();
  /** The one open session per peer replica. */
  private readonly byReplica = new Map<ReplicaId, PeerSession>();
  /** Per session: its bytesSent at the tick it last changed, and when (the heartbeat's "sent nothing for"). */
  private readonly sentAt = new WeakMap<PeerSession, { bytes: number; at: number }>();
  private stopped = false;

  constructor(private readonly options: SessionTableOptions) {}

  /** Open sessions, one per peer replica. */
  *open(): Generator<PeerSession> {
    for (const session of this.byReplica.values()) if (session.phase === 'open') yield session;
  }

  sessionOf(replica: ReplicaId): PeerSession | undefined {
    return this.byReplica.get(replica);
  }

  covers(replica: ReplicaId): boolean {
    return this.byReplica.has(replica);
  }

  /** Makes a session of a connection; `target` is the dial target it came from (none when inbound). */
  attach(connection: Connection, target: DialTarget | undefined): void {
    if (this.stopped) {
      connection.close('shutting_down: the node is stopping');
      return;
    }
    if (connection.direction === 'inbound' && this.handshakesFrom(sourceOf(connection.remoteAddress)) >= (this.options.maxHandshakesPerSource ?? MAX_HANDSHAKES_PER_SOURCE)) {
      this.options.metrics.peerRejected('too_many_handshakes');
      this.options.log.warn({ address: connection.remoteAddress }, 'closing peer connection: too many unauthenticated sockets from this host');
      connection.close('bad_frame: too many unauthenticated connections from this host');
      return;
    }
    const session = new PeerSession(connection, this.options.context, this.options.timers.now());
    if (target !== undefined) this.options.directory.sessionStarted(target, session);
    this.all.add(session);
    // Hello goes out before attach: attach delivers frames that arrived early (the peer's hello,
    // on a dialled connection), and answering one sends our auth — which must follow our hello.
    session.send(session.hello());
    connection.attach({
      message: (frame) => this.guard(session, () => this.onFrame(session, frame, target)),
      close: (reason) => this.onClose(session, reason, target),
    });
  }

  /**
   * Runs work for one session: a throw closes that session (logged, counted) and nothing else,
   * so no frame or timer of one peer can stop the node.
   */
  guard(session: PeerSession, work: () => void): void {
    try {
      work();
    } catch (error) {
      this.options.onFailure?.();
      this.options.log.error({ err: error, peer: session.peer?.name, address: session.connection.remoteAddress }, 'peer session failed; closing it');
      session.close('internal error');
    }
  }

  private handshakesFrom(source: string): number {
    let count = 0;
    for (const session of this.all) {
      if (session.phase === 'handshake' && session.connection.direction === 'inbound' && sourceOf(session.connection.remoteAddress) === source) count++;
    }
    return count;
  }

  /**
   * Pings the sessions that went quiet; closes the ones silent for longer than `timeoutMs`.
   * Heartbeats only on idle links, and at rest from one side: the dialler pings a session quiet
   * both ways for `intervalMs` (or one it sent nothing to for twice that), the listener only one
   * it sent nothing to for three intervals (never while it answers the dialler's pings), so a
   * quiet link carries one ping and one pong per two ticks instead of two of each per tick. A side
   * that only receives still pings, so the peer sees traffic. Any frame counts as traffic.
   */
  heartbeat(timeoutMs: number, intervalMs = 0): void {
    const now = this.options.timers.now();
    const handshakeTimeoutMs = this.options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    for (const session of [...this.all]) {
      // A session whose socket the merge queue paused is not silent, we stopped reading it: its
      // silence is counted from when it is read again (else a backlog that takes longer than the
      // timeout to merge would close the session before its last frames are read).
      if (session.readingPaused) session.lastReceivedAt = now;
      const silentMs = now - session.lastReceivedAt;
      if (session.phase === 'handshake' && now - session.openedAt > handshakeTimeoutMs) {
        // Pings keep a socket "alive", not authenticated: the handshake has a deadline of its own.
        this.options.metrics.heartbeatTimeout();
        this.options.log.warn({ address: session.connection.remoteAddress }, 'handshake not finished in time, closing');
        session.close(`handshake timeout: not finished within ${handshakeTimeoutMs} ms`);
      } else if (silentMs > timeoutMs) {
        this.options.metrics.heartbeatTimeout();
        this.options.log.warn({ peer: session.peer?.name, address: session.connection.remoteAddress, silentMs }, 'peer silent, closing');
        session.close(`heartbeat timeout: no traffic for ${silentMs} ms`);
      } else {
        // What we sent is what the peer's silence check sees: a side that only receives (a bulk
        // answer coming in) must still ping, or the peer's ping would wait behind that bulk.
        const sent = this.sentAt.get(session);
        if (sent === undefined || sent.bytes !== session.bytesSent) this.sentAt.set(session, { bytes: session.bytesSent, at: now });
        const quietMs = now - (this.sentAt.get(session)?.at ?? now);
        const threshold = idleBeforePing(session.connection.direction, intervalMs, timeoutMs);
        const due = session.connection.direction === 'outbound' ? (silentMs >= threshold && quietMs >= threshold) || quietMs >= 2 * threshold : quietMs >= threshold;
        if (due) {
          session.ping();
          this.sentAt.set(session, { bytes: session.bytesSent, at: now });
        }
      }
    }
  }

  /** Refuses every session and accepts no more. */
  stop(): void {
    this.stopped = true;
    for (const session of [...this.all]) session.reject('shutting_down', 'the node is stopping');
  }

  private onFrame(session: PeerSession, frame: Uint8Array, target: DialTarget | undefined): void {
    const event = session.receive(frame, this.options.timers.now());
    switch (event.kind) {
      case 'none':
        return;
      case 'closed':
        this.onEnded(session, event);
        return;
      case 'open':
        this.onOpen(session, target);
        return;
      default:
        try {
          this.options.onMessage(session, event);
        } catch (error) {
          this.options.onFailure?.();
          // A frame that decoded but could not be applied (a malformed awareness update, or a
          // store failure): drop this peer, keep serving everyone else.
          this.options.log.error({ err: error, peer: session.peer?.name }, 'failed to apply a peer frame');
          this.refuse(session, 'bad_frame', 'the frame could not be applied');
        }
    }
  }

  /** The session ended with a reject, sent by it or received from the peer: log and count it. */
  private onEnded(session: PeerSession, event: Extract<SessionEvent, { kind: 'closed' }>): void {
    const { code, reason } = event;
    if (event.by === 'us') {
      this.logRefusal(session, code, reason);
    } else if (event.inHandshake) {
      this.options.metrics.peerRejected(code);
      this.options.log.warn({ address: session.connection.remoteAddress, code, reason }, 'peer refused the connection');
    } else {
      this.options.log.warn({ peer: session.peer?.name, code, reason }, 'peer closed the session');
    }
  }

  /** Sends a reject with its reason (logged, counted) and closes the session. */
  refuse(session: PeerSession, code: RejectCode, reason: string): void {
    this.logRefusal(session, code, reason);
    session.reject(code, reason);
  }

  private logRefusal(session: PeerSession, code: RejectCode, reason: string): void {
    this.options.metrics.peerRejected(code);
    const level = code === 'self' || code === 'duplicate' || code === 'full' ? 'debug' : 'warn';
    this.options.log[level]({ address: session.connection.remoteAddress, peer: session.peer?.name, code, reason }, 'closing peer connection');
  }

  private onOpen(session: PeerSession, target: DialTarget | undefined): void {
    const peer = session.peer!;
    const { directory } = this.options;
    directory.identified(target, peer);
    const existing = this.byReplica.get(peer.replica);
    if (existing !== undefined && existing !== session) {
      // Both nodes pick the same survivor: the connection dialled by the lower replica id.
      const dialer = (s: PeerSession) => (s.connection.direction === 'outbound' ? s.localReplica : s.peer!.replica);
      if (dialer(session) >= dialer(existing)) {
        this.refuse(session, 'duplicate', 'these two nodes already have a connection');
        return;
      }
      // Register the survivor first, so the loser's close handler sees the peer still covered.
      this.byReplica.set(peer.replica, session);
      this.refuse(existing, 'duplicate', 'these two nodes already have a connection');
    } else if (session.connection.direction === 'inbound' && this.options.admitsInbound?.(session) === false) {
      this.refuse(session, 'full', 'this node keeps as many peers as it takes, and at most 2 from one host (bounded degree); dial another');
      return;
    }
    this.byReplica.set(peer.replica, session);
    this.options.metrics.peersConnected(this.byReplica.size);
    this.options.log.info(
      { peer: peer.name, replica: peer.replica, address: session.connection.remoteAddress, direction: session.connection.direction },
      'peer connected',
    );
    directory.sessionOpened(target, peer);
    this.options.onOpen(session);
  }

  private onClose(session: PeerSession, reason: string, target: DialTarget | undefined): void {
    const wasOpen = session.connectionClosed();
    this.all.delete(session);
    this.options.onClose(session);
    const peer = session.peer;
    const { directory } = this.options;
    if (peer !== undefined && this.byReplica.get(peer.replica) === session) {
      this.byReplica.delete(peer.replica);
      this.options.metrics.peersConnected(this.byReplica.size);
      directory.uncovered(peer.replica);
    }
    if (wasOpen) this.options.log.info({ peer: peer?.name, address: session.connection.remoteAddress, reason }, 'peer disconnected');
    if (target !== undefined) directory.sessionClosed(target, session, reason, wasOpen);
  }
}
