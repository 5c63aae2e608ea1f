/**
 * Node presence over y-protocols awareness. Each node owns one awareness client whose state
 * describes it; updates are relayed to every session except the one they came from, so a node
 * sees members it has no direct connection to. Awareness drops a state that was not renewed for
 * 30 s (it renews its own every 15 s), and a node that stops announces its removal.
 * Remote states are untrusted JSON: `members()` returns only well-formed ones.
 *
 * Time and the client id are injected: the awareness library runs its own `setInterval` on the
 * wall clock and takes a random client id, which a simulation can control neither of. So the
 * library's interval is cleared at once and its check (renew our state after half the timeout,
 * drop a remote one silent for the whole timeout) runs here on `timers`, with when each state was
 * last renewed read from that clock too.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as Y from 'yjs';
import type { TimerHandle, Timers } from '../timers.js';

export interface NodePresence {
  readonly name: string;
  readonly replicaId: string;
  readonly address?: string;
  readonly region?: string;
  readonly version: string;
  readonly startedAt: number;
}

export interface Member extends NodePresence {
  readonly clientId: number;
  readonly local: boolean;
}

type AwarenessChange = { added: number[]; updated: number[]; removed: number[] };

/**
 * Highest awareness clock taken from a peer: an entry above it is refused (the session closes).
 * Far below 2^53, so no relayed clock can push a renewal past a safe integer.
 */
export const MAX_AWARENESS_CLOCK = 2 ** 48;

/**
 * An update without the entries of `own` (a remote never changes this node's own presence),
 * re-encoded; undefined when nothing is left. The codec has checked the structure already.
 * Throws on a clock above MAX_AWARENESS_CLOCK.
 */
export function withoutClient(update: Uint8Array, own: number): Uint8Array | undefined {
  const decoder = decoding.createDecoder(update);
  const count = decoding.readVarUint(decoder);
  const kept: Array<{ client: number; clock: number; state: string }> = [];
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(decoder);
    const clock = decoding.readVarUint(decoder);
    const state = decoding.readVarString(decoder);
    if (clock > MAX_AWARENESS_CLOCK) throw new RangeError(`awareness clock ${clock} of client ${client} is beyond ${MAX_AWARENESS_CLOCK}`);
    if (client !== own) kept.push({ client, clock, state });
  }
  if (kept.length === count) return update;
  if (kept.length === 0) return undefined;
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, kept.length);
  for (const entry of kept) {
    encoding.writeVarUint(encoder, entry.client);
    encoding.writeVarUint(encoder, entry.clock);
    encoding.writeVarString(encoder, entry.state);
  }
  return encoding.toUint8Array(encoder);
}

/** The awareness library's timeout: a state not renewed for this long is dropped. */
export const PRESENCE_TIMEOUT_MS = awarenessProtocol.outdatedTimeout;
/** How often the timeout check runs (the library's own period: a tenth of the timeout). */
export const PRESENCE_CHECK_MS = Math.floor(PRESENCE_TIMEOUT_MS / 10);

export interface PresenceOptions {
  readonly timers: Timers;
  /** The awareness client id of this node (uint32; the library would pick one at random). */
  readonly clientId: number;
}

export class Presence {
  private readonly doc: Y.Doc;
  private readonly awareness: awarenessProtocol.Awareness;
  private readonly timers: Timers;
  /** timers.now() of each state's last renewal (ours included). */
  private readonly renewedAt = new Map<number, number>();
  private checkTimer: TimerHandle | undefined;
  private destroyed = false;

  /** `broadcast(update, origin)` must send the update to every session except `origin`. */
  constructor(
    local: NodePresence,
    private readonly broadcast: (update: Uint8Array, origin: unknown) => void,
    options: PresenceOptions,
  ) {
    this.timers = options.timers;
    this.doc = new Y.Doc();
    // Before the awareness is made: it takes its client id from the document.
    this.doc.clientID = options.clientId >>> 0;
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    clearInterval(this.awareness._checkInterval as ReturnType<typeof setInterval>);
    this.awareness.on('update', (change: AwarenessChange, origin: unknown) => {
      const now = this.timers.now();
      for (const client of [...change.added, ...change.updated]) this.renewedAt.set(client, now);
      for (const client of change.removed) this.renewedAt.delete(client);
      const clients = [...change.added, ...change.updated, ...change.removed];
      if (clients.length === 0 || this.destroyed) return;
      this.broadcast(awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients), origin);
    });
    this.awareness.setLocalState({ ...local });
    this.scheduleCheck();
  }

  /** The library's interval check, on our clock. */
  check(): void {
    if (this.destroyed) return;
    const now = this.timers.now();
    const own = this.awareness.clientID;
    const local = this.awareness.getLocalState();
    if (local !== null && now - (this.renewedAt.get(own) ?? now) >= PRESENCE_TIMEOUT_MS / 2) this.awareness.setLocalState(local);
    const outdated: number[] = [];
    for (const [client, at] of this.renewedAt) {
      if (client !== own && now - at >= PRESENCE_TIMEOUT_MS && this.awareness.states.has(client)) outdated.push(client);
    }
    if (outdated.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, outdated, 'timeout');
  }

  private scheduleCheck(): void {
    if (this.destroyed) return;
    this.checkTimer = this.timers.setTimeout(() => {
      this.check();
      this.scheduleCheck();
    }, PRESENCE_CHECK_MS);
  }

  /** Applies an update from a peer; throws on a malformed one (the caller drops that peer). */
  applyRemote(update: Uint8Array, origin: unknown): void {
    const theirs = withoutClient(update, this.awareness.clientID);
    if (theirs === undefined) return;
    awarenessProtocol.applyAwarenessUpdate(this.awareness, theirs, origin);
    this.dropSuperseded();
  }

  /**
   * A node that crashed cannot announce its departure, and when it comes back it is a new
   * awareness client (often under a new replica id too): its old state would linger as a second,
   * live-looking member until awareness times it out (30 s). Two states with the same name and
   * address are two runs of one node, so the one that started earlier is gone: remove it here and,
   * through the update this emits, everywhere else.
   */
  private dropSuperseded(): void {
    const newest = new Map<string, { clientId: number; startedAt: number }>();
    const stale: number[] = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      const member = parseMember(state);
      if (member?.address === undefined) continue;
      const key = `${member.name}\n${member.address}`;
      const seen = newest.get(key);
      if (seen === undefined) {
        newest.set(key, { clientId, startedAt: member.startedAt });
      } else if (member.startedAt > seen.startedAt) {
        stale.push(seen.clientId);
        newest.set(key, { clientId, startedAt: member.startedAt });
      } else {
        stale.push(clientId);
      }
    }
    // Never our own state (two nodes configured alike would otherwise remove each other's).
    const remove = stale.filter((clientId) => clientId !== this.awareness.clientID);
    if (remove.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, remove, 'superseded');
  }

  /** Every known state, for a session that just opened. */
  fullUpdate(): Uint8Array {
    return awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()]);
  }

  updateLocal(fields: Partial<NodePresence>): void {
    const current = this.awareness.getLocalState() ?? {};
    this.awareness.setLocalState({ ...current, ...fields });
  }

  members(): Member[] {
    const out: Member[] = [];
    for (const [clientId, state] of this.awareness.getStates()) {
      const member = parseMember(state);
      if (member !== undefined) out.push({ ...member, clientId, local: clientId === this.awareness.clientID });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.clientId - b.clientId));
  }

  /** Announces this node's departure to its peers, then releases the awareness timer. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.awareness.clientID], 'local');
    this.destroyed = true;
    if (this.checkTimer !== undefined) this.timers.clearTimeout(this.checkTimer);
    this.awareness.destroy();
    this.doc.destroy();
  }
}

function parseMember(state: unknown): NodePresence | undefined {
  if (typeof state !== 'object' || state === null) return undefined;
  const s = state as Record<string, unknown>;
  if (typeof s.name !== 'string' || typeof s.replicaId !== 'string' || typeof s.version !== 'string') return undefined;
  if (typeof s.startedAt !== 'number' || !Number.isFinite(s.startedAt)) return undefined;
  return {
    name: s.name.slice(0, 256),
    replicaId: s.replicaId.slice(0, 64),
    version: s.version.slice(0, 64),
    startedAt: s.startedAt,
    ...(typeof s.address === 'string' ? { address: s.address.slice(0, 300) } : {}),
    ...(typeof s.region === 'string' ? { region: s.region.slice(0, 64) } : {}),
  };
}
