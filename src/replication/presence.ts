/**
 * Node presence over y-protocols awareness. Each node owns one awareness client whose state
 * describes it. Remote states are untrusted JSON: `members()` returns only well-formed ones.
 * Awareness drops a state that was not renewed for 30 s, and a node that stops announces its
 * removal.
 *
 * Quiet at rest (protocol 4): nothing is sent while nothing changes.
 * - A state change of our own goes to every direct peer (open session), once. Renewals are not
 *   sent: a peer's open session is its renewal ("presence on heartbeats") — every check, the
 *   state of each directly connected node is renewed here.
 * - Nothing is relayed on receipt (relaying every renewal to every peer cost (N−1)² frames per
 *   renewal). A node lists in its own state the members it holds but has no session with
 *   (`indirect`, client ids) and how many members it holds (`members`). Each check, a node sends
 *   a peer the states the peer lists as indirect and this node hears directly (an entry at the
 *   clock the receiver holds counts as a renewal there), and its full update to a peer that holds
 *   fewer members than it does. In a full mesh both are empty.
 *
 * - In bounded-degree mode (sparse): own clock steps relayed hop by hop instead (SPARSE_RENEW_MS).
 *
 * Time and the client id are injected: the awareness library runs its own `setInterval` on the
 * wall clock and takes a random client id, which a simulation can control neither of. So the
 * library's interval is cleared at once and its check runs here on `timers`, with when each
 * state was last renewed read from that clock too.
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
/** The entries of an update the codec has checked already. */
function entriesOf(update: Uint8Array): Array<{ client: number; clock: number; state: string }> {
  const decoder = decoding.createDecoder(update);
  const count = decoding.readVarUint(decoder);
  const entries: Array<{ client: number; clock: number; state: string }> = [];
  for (let i = 0; i < count; i++) entries.push({ client: decoding.readVarUint(decoder), clock: decoding.readVarUint(decoder), state: decoding.readVarString(decoder) });
  return entries;
}

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
  /** True while the node is in bounded-degree mode (see SPARSE_RENEW_MS); default never. */
  readonly sparse?: () => boolean;
}

/**
 * Presence states held at most (members of the cluster, this node included), the most one
 * state's JSON may take, and the most states one update (one frame) may carry. An update past any
 * closes the session it came on: without them a peer could add states until an update passed the
 * frame limit, which then failed on every honest session. An honest state is ~1.1 KB at most (a
 * 128-character name, MAX_INDIRECT_LISTED ids); 400 × (2,048 + 14) bytes keep one update under
 * 1 MiB, and the full update goes in parts of MAX_UPDATE_STATES.
 */
export const MAX_PRESENCE_STATES = 2_048;
export const MAX_PRESENCE_STATE_BYTES = 2_048;
export const MAX_UPDATE_STATES = 400;

/**
 * Sparse mode (bounded degree, active-view.ts): most members are not direct peers, and the rules
 * above would send full updates all the time (a member count that differs somewhere is the rule,
 * not the exception). Instead each node steps its own clock every SPARSE_RENEW_MS, and at each
 * check every node sends each direct peer the entries (states and removals) whose clock that peer
 * is not known to hold — known from what it sent us and what we sent it. So each renewal crosses
 * each link about once, and a state not renewed for SPARSE_TIMEOUT_MS is dropped.
 */
export const SPARSE_RENEW_MS = 120_000;
export const SPARSE_TIMEOUT_MS = 3 * SPARSE_RENEW_MS;

/** Members listed as indirect in one state, at most (a longer list is cut; a remote's is ignored past it). */
export const MAX_INDIRECT_LISTED = 64;

/** A direct peer as presence sees it: its replica id (from the handshake) and a way to send to it. */
export interface PresencePeer {
  readonly replica: string;
  send(update: Uint8Array): void;
}

export class Presence {
  private readonly doc: Y.Doc;
  private readonly awareness: awarenessProtocol.Awareness;
  private readonly timers: Timers;
  /** timers.now() of each state's last renewal (ours included). */
  private readonly renewedAt = new Map<number, number>();
  private checkTimer: TimerHandle | undefined;
  private destroyed = false;
  private readonly sparse: () => boolean;
  /** Sparse mode: per direct peer (replica id), the clock of each client it is known to hold. */
  private readonly peerClocks = new Map<string, Map<number, number>>();
  /**
   * For dropSuperseded: the held states with an address, by `name\naddress` (client → startedAt),
   * each client's key, and the keys whose states changed since it last ran. Kept from the
   * awareness 'update' event, so an update costs its own entries, not a scan of every state.
   */
  private readonly runsByKey = new Map<string, Map<number, number>>();
  private readonly keyOf = new Map<number, string>();
  private readonly changedKeys = new Set<string>();

  /** `peers()` lists the open sessions: changes of our own go to each of them. */
  constructor(
    local: NodePresence,
    private readonly peers: () => Iterable<PresencePeer>,
    options: PresenceOptions,
  ) {
    this.timers = options.timers;
    this.sparse = options.sparse ?? (() => false);
    this.doc = new Y.Doc();
    // Before the awareness is made: it takes its client id from the document.
    this.doc.clientID = options.clientId >>> 0;
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    clearInterval(this.awareness._checkInterval as ReturnType<typeof setInterval>);
    this.awareness.on('update', (change: AwarenessChange) => {
      const now = this.timers.now();
      for (const client of [...change.added, ...change.updated]) this.renewedAt.set(client, now);
      for (const client of change.removed) this.renewedAt.delete(client);
      for (const client of change.removed) this.unindex(client);
      for (const client of [...change.added, ...change.updated]) this.index(client);
    });
    // Only our own changes are sent (renewals and remote updates are not: see above).
    this.awareness.on('change', (_change: AwarenessChange, origin: unknown) => {
      if (origin !== 'local' || this.destroyed) return;
      const own = this.awareness.clientID;
      const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [own]);
      const clock = this.awareness.meta.get(own)?.clock ?? 0;
      for (const peer of this.peers()) {
        peer.send(update);
        this.peerClocks.get(peer.replica)?.set(own, clock);
      }
    });
    this.awareness.setLocalState({ ...local });
    this.scheduleCheck();
  }

  /**
   * The library's interval check, on our clock, plus the relay rules above: renews the states of
   * direct peers, drops states silent for the timeout, updates what we list, sends peers what
   * they lack.
   */
  check(): void {
    if (this.destroyed) return;
    if (this.sparse()) {
      this.checkSparse();
      return;
    }
    this.peerClocks.clear();
    const now = this.timers.now();
    const own = this.awareness.clientID;
    const direct = new Map<string, PresencePeer>();
    for (const peer of this.peers()) direct.set(peer.replica, peer);
    const clientOf = new Map<string, number>();
    const indirect: number[] = [];
    for (const [client, state] of this.awareness.getStates()) {
      if (client === own) continue;
      const replica = (state as { replicaId?: unknown }).replicaId;
      if (typeof replica === 'string' && direct.has(replica)) {
        // One state per direct peer is its presence: the first one held under its replica id.
        // Renewing every state that claims it would let a peer keep any number of them alive
        // just by holding its session open.
        if (!clientOf.has(replica)) {
          clientOf.set(replica, client);
          this.renewedAt.set(client, now);
        }
      } else {
        indirect.push(client);
      }
    }
    const outdated: number[] = [];
    for (const [client, at] of this.renewedAt) {
      if (client !== own && now - at >= PRESENCE_TIMEOUT_MS && this.awareness.states.has(client)) outdated.push(client);
    }
    if (outdated.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, outdated, 'timeout');

    const local = this.awareness.getLocalState();
    if (local !== null) {
      const listed = indirect
        .filter((client) => this.awareness.states.has(client))
        .sort((a, b) => a - b)
        .slice(0, MAX_INDIRECT_LISTED);
      const members = this.awareness.getStates().size;
      const current = local as { indirect?: unknown; members?: unknown };
      if (current.members !== members || JSON.stringify(current.indirect ?? []) !== JSON.stringify(listed)) {
        this.awareness.setLocalState({ ...local, members, indirect: listed });
      } else if (now - (this.renewedAt.get(own) ?? now) >= PRESENCE_TIMEOUT_MS / 2) {
        // The library's local renewal (a clock step), kept so a later change always wins; not sent.
        this.awareness.setLocalState(local);
      }
    }
    this.relay(direct, clientOf);
  }

  /** Sends each direct peer the states it lists as indirect that we hear directly, or everything when it holds fewer members. */
  private relay(direct: ReadonlyMap<string, PresencePeer>, clientOf: ReadonlyMap<string, number>): void {
    const held = this.awareness.getStates();
    const directClients = new Set(clientOf.values());
    for (const [replica, peer] of direct) {
      const client = clientOf.get(replica);
      const state = client === undefined ? undefined : (held.get(client) as { indirect?: unknown; members?: unknown } | undefined);
      if (state === undefined) continue;
      if (typeof state.members === 'number' && state.members < held.size) {
        for (const part of this.fullUpdate()) peer.send(part);
        continue;
      }
      const wanted: unknown[] = Array.isArray(state.indirect) ? (state.indirect as unknown[]).slice(0, MAX_INDIRECT_LISTED) : [];
      const relayed = wanted.filter((c): c is number => typeof c === 'number' && directClients.has(c) && c !== client);
      if (relayed.length > 0) peer.send(awarenessProtocol.encodeAwarenessUpdate(this.awareness, relayed));
    }
  }

  /** The check in sparse mode: renew direct peers, drop what timed out, step our clock, send each peer what it lacks. */
  private checkSparse(): void {
    const now = this.timers.now();
    const own = this.awareness.clientID;
    const direct = new Map<string, PresencePeer>();
    for (const peer of this.peers()) direct.set(peer.replica, peer);
    const renewed = new Set<string>();
    for (const [client, state] of this.awareness.getStates()) {
      const replica = (state as { replicaId?: unknown }).replicaId;
      // One state per direct peer is renewed by its session (as in the mesh).
      if (client !== own && typeof replica === 'string' && direct.has(replica) && !renewed.has(replica)) {
        renewed.add(replica);
        this.renewedAt.set(client, now);
      }
    }
    const outdated: number[] = [];
    for (const [client, at] of this.renewedAt) {
      if (client !== own && now - at >= SPARSE_TIMEOUT_MS && this.awareness.states.has(client)) outdated.push(client);
    }
    if (outdated.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, outdated, 'timeout');
    const local = this.awareness.getLocalState();
    if (local !== null) {
      const current = local as { indirect?: unknown; members?: unknown };
      if (current.indirect !== undefined || current.members !== undefined) {
        // The mesh's relay lists mean nothing here.
        const { indirect: _indirect, members: _members, ...rest } = current as Record<string, unknown>;
        this.awareness.setLocalState(rest);
      } else if (now - (this.renewedAt.get(own) ?? now) >= SPARSE_RENEW_MS) {
        this.awareness.setLocalState(local);
      }
    }
    for (const replica of [...this.peerClocks.keys()]) if (!direct.has(replica)) this.peerClocks.delete(replica);
    for (const [replica, peer] of direct) {
      const known = this.peerClocks.get(replica) ?? new Map<number, number>();
      this.peerClocks.set(replica, known);
      const lacking: number[] = [];
      for (const [client, meta] of this.awareness.meta) {
        if ((known.get(client) ?? -1) < meta.clock) lacking.push(client);
      }
      for (let i = 0; i < lacking.length; i += MAX_UPDATE_STATES) {
        const part = lacking.slice(i, i + MAX_UPDATE_STATES);
        peer.send(awarenessProtocol.encodeAwarenessUpdate(this.awareness, part));
        for (const client of part) known.set(client, this.awareness.meta.get(client)!.clock);
      }
    }
  }

  private scheduleCheck(): void {
    if (this.destroyed) return;
    this.checkTimer = this.timers.setTimeout(() => {
      this.check();
      this.scheduleCheck();
    }, PRESENCE_CHECK_MS);
  }

  /**
   * Applies an update from a peer; throws on a malformed one, or one that would take the states
   * held past MAX_PRESENCE_STATES (the caller drops that peer).
   */
  applyRemote(update: Uint8Array, origin: unknown, from?: string): void {
    const theirs = withoutClient(update, this.awareness.clientID);
    if (theirs === undefined) return;
    const entries = entriesOf(theirs);
    if (entries.length > MAX_UPDATE_STATES) throw new RangeError(`presence update of ${entries.length} states; at most ${MAX_UPDATE_STATES} a frame`);
    for (const entry of entries) {
      if (entry.state.length > MAX_PRESENCE_STATE_BYTES) throw new RangeError(`presence state of client ${entry.client} is ${entry.state.length} characters; at most ${MAX_PRESENCE_STATE_BYTES}`);
    }
    const added = new Set(entries.filter((entry) => entry.state !== 'null' && !this.awareness.states.has(entry.client)).map((entry) => entry.client));
    if (this.awareness.states.size + added.size > MAX_PRESENCE_STATES) {
      throw new RangeError(`presence would hold ${this.awareness.states.size + added.size} members; at most ${MAX_PRESENCE_STATES} are kept`);
    }
    // An entry at the clock we hold is a renewal relayed by a peer that hears that node.
    const now = this.timers.now();
    for (const entry of entries) {
      if (entry.state !== 'null' && this.awareness.states.has(entry.client) && this.awareness.meta.get(entry.client)?.clock === entry.clock) this.renewedAt.set(entry.client, now);
    }
    awarenessProtocol.applyAwarenessUpdate(this.awareness, theirs, origin);
    if (from !== undefined && this.sparse()) {
      // What the peer sent, it holds: never sent back to it.
      const known = this.peerClocks.get(from) ?? new Map<number, number>();
      this.peerClocks.set(from, known);
      for (const entry of entries) if ((known.get(entry.client) ?? -1) < entry.clock) known.set(entry.client, entry.clock);
    }
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
    // Only a key whose states changed can hold a new superseded run: a group left alone since the
    // last pass holds its newest run and at most our own besides, and removals keep it so.
    const stale: number[] = [];
    for (const key of this.changedKeys) {
      const runs = this.runsByKey.get(key);
      if (runs === undefined || runs.size < 2) continue;
      let newestStart = -Infinity;
      for (const startedAt of runs.values()) if (startedAt > newestStart) newestStart = startedAt;
      const newest = [...runs].filter(([, startedAt]) => startedAt === newestStart).map(([clientId]) => clientId);
      // Of runs started at the same instant the first held stays (the order of the states).
      const kept = newest.length === 1 ? newest[0] : [...this.awareness.getStates().keys()].find((clientId) => newest.includes(clientId));
      for (const clientId of runs.keys()) if (clientId !== kept) stale.push(clientId);
    }
    this.changedKeys.clear();
    // Never our own state (two nodes configured alike would otherwise remove each other's).
    const remove = stale.filter((clientId) => clientId !== this.awareness.clientID);
    if (remove.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, remove, 'superseded');
  }

  /** Files a held state under its name and address for dropSuperseded (a state without an address is not filed). */
  private index(clientId: number): void {
    this.unindex(clientId);
    const member = parseMember(this.awareness.states.get(clientId));
    if (member?.address === undefined) return;
    const key = `${member.name}\n${member.address}`;
    const runs = this.runsByKey.get(key) ?? new Map<number, number>();
    this.runsByKey.set(key, runs);
    runs.set(clientId, member.startedAt);
    this.keyOf.set(clientId, key);
    this.changedKeys.add(key);
  }

  private unindex(clientId: number): void {
    const key = this.keyOf.get(clientId);
    if (key === undefined) return;
    this.keyOf.delete(clientId);
    const runs = this.runsByKey.get(key);
    runs?.delete(clientId);
    if (runs?.size === 0) this.runsByKey.delete(key);
  }

  /** Our own state, for a session that just opened (it is sent the rest if it holds fewer members: see `relay`). */
  ownUpdate(): Uint8Array {
    return awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.awareness.clientID]);
  }

  /** Every known state, in updates of MAX_UPDATE_STATES at most. */
  fullUpdate(): Uint8Array[] {
    const clients = [...this.awareness.getStates().keys()];
    const parts: Uint8Array[] = [];
    for (let i = 0; i < clients.length; i += MAX_UPDATE_STATES) parts.push(awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients.slice(i, i + MAX_UPDATE_STATES)));
    return parts;
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
