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
 *
 * Over 300 lines: about 110 are the awareness update's raw encoding and bounds (entriesOf,
 * encodeUpdate, encodeParts), which could move to a file of their own; the rest is one class over
 * one awareness instance.
 */
import * as decoding from 'lib0/decoding';
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

type Entry = { client: number; clock: number; state: string };

/**
 * The entries of an update the codec has checked already. Throws on a clock above
 * MAX_AWARENESS_CLOCK.
 */
function entriesOf(update: Uint8Array): Entry[] {
  const decoder = decoding.createDecoder(update);
  const count = decoding.readVarUint(decoder);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(decoder);
    const clock = decoding.readVarUint(decoder);
    const state = decoding.readVarString(decoder);
    if (clock > MAX_AWARENESS_CLOCK) throw new RangeError(`awareness clock ${clock} of client ${client} is beyond ${MAX_AWARENESS_CLOCK}`);
    entries.push({ client, clock, state });
  }
  return entries;
}

const textEncoder = new TextEncoder();

function varUintSize(n: number): number {
  let size = 1;
  for (; n > 0x7f; size++) n = Math.floor(n / 128);
  return size;
}

function putVarUint(out: Uint8Array, at: number, n: number): number {
  for (; n > 0x7f; n = Math.floor(n / 128)) out[at++] = 0x80 | (n % 128);
  out[at++] = n;
  return at;
}

/**
 * An update of `entries`, as lib0's encoder writes it (varUint count, then per entry varUint
 * client, varUint clock, varString state), into one buffer sized for the worst case: the
 * encoder's growing buffers and per-string copies cost more than the entries themselves.
 */
function encodeUpdate(entries: readonly Entry[]): Uint8Array {
  let bound = 5;
  for (const entry of entries) bound += ENTRY_OVERHEAD_BYTES + entry.state.length * 3;
  const out = new Uint8Array(bound);
  let at = putVarUint(out, 0, entries.length);
  for (const { client, clock, state } of entries) {
    at = putVarUint(out, at, client);
    at = putVarUint(out, at, clock);
    // The string goes after room for its length's worst case, and moves back if it took less.
    const reserved = varUintSize(state.length * 3);
    const { read, written } = textEncoder.encodeInto(state, out.subarray(at + reserved));
    // encodeInto stops silently where the buffer ends (and a typed array ignores writes past
    // it): a bound that no longer holds (ENTRY_OVERHEAD_BYTES, MAX_AWARENESS_CLOCK) fails here.
    if (read !== state.length) throw new RangeError(`presence update buffer of ${bound} bytes is too short for the state of client ${client}`);
    const size = varUintSize(written);
    if (size < reserved) out.copyWithin(at + size, at + reserved, at + reserved + written);
    at = putVarUint(out, at, written) + written;
  }
  if (at > bound) throw new RangeError(`presence update of ${at} bytes written into a buffer of ${bound}`);
  return out.subarray(0, at);
}

/** The bytes `text` takes in UTF-8 as lib0 writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if ((code & 0xfc00) === 0xd800 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** At most what an entry's client (uint32), clock (below 2^56) and state length take (three varUints). */
const ENTRY_OVERHEAD_BYTES = 5 + 8 + 4;

/**
 * Entries as updates of at most MAX_UPDATE_STATES entries and MAX_UPDATE_BYTES bytes each (an
 * entry larger than that alone goes alone), in order. Sizes are counted at their worst (3 bytes a
 * UTF-16 unit), so a part may be cut early but never passes the bound.
 */
export function encodeParts(entries: readonly Entry[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const countBytes = 5;
  let start = 0;
  let bytes = countBytes;
  for (let i = 0; i < entries.length; i++) {
    const size = ENTRY_OVERHEAD_BYTES + entries[i]!.state.length * 3;
    if (i > start && (i - start >= MAX_UPDATE_STATES || bytes + size > MAX_UPDATE_BYTES)) {
      parts.push(encodeUpdate(entries.slice(start, i)));
      start = i;
      bytes = countBytes;
    }
    bytes += size;
  }
  if (entries.length > start) parts.push(encodeUpdate(entries.slice(start)));
  return parts;
}

/** True for an entry that removes its client (JSON null; the codec has checked it is JSON). */
function isRemoval(state: string): boolean {
  return state.trim() === 'null';
}

/** The replica id a state's JSON claims, if any (the codec has checked it is JSON). */
function replicaOfState(state: string): string | undefined {
  const replica = (JSON.parse(state) as { replicaId?: unknown } | null)?.replicaId;
  return typeof replica === 'string' ? replica : undefined;
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
  /**
   * Called with the entries of a remote update ignored for a bound (`size`: a state over
   * MAX_PRESENCE_STATE_BYTES; `cap`: no room under MAX_PRESENCE_STATES); default nothing.
   */
  readonly onIgnored?: (reason: 'size' | 'cap', entries: number) => void;
}

/**
 * Bounds on what a peer can make this node hold and send. Past one, what does not fit is ignored
 * (`onIgnored`): a relayed update past a bound usually comes from an honest node relaying
 * another's states, and closing its session would cut that node off. Only a malformed update
 * (or one of more than MAX_UPDATE_STATES entries) closes the session it came on.
 * - MAX_PRESENCE_STATES: awareness entries held at most, states and removals together (members
 *   of the cluster, this node included, plus the removals of REMOVAL_TIMEOUT_MS), after every
 *   update. The library keeps an entry (`meta`) for every client it ever heard of, a removal of a
 *   client it never held included; without the count a peer could grow it without end with
 *   removals. Removals make room for new states (the oldest is forgotten first); a new state or a
 *   removal of an unknown client that finds no room is ignored (not held, not passed on). A
 *   direct peer's own state is always taken: a state from elsewhere is dropped for it.
 * - MAX_PRESENCE_STATE_BYTES: the most one state's JSON may take, in UTF-8 bytes (a character of
 *   a name can take 3); a larger one is ignored. An honest state is ~1.1 KB at most (a
 *   128-character name, MAX_INDIRECT_LISTED ids).
 * - MAX_UPDATE_STATES: the most entries one update (one frame) may carry; more close the session.
 * Whatever is held, this node sends it in parts of at most MAX_UPDATE_STATES entries and
 * MAX_UPDATE_BYTES encoded bytes (an entry takes at most MAX_PRESENCE_STATE_BYTES + 15), so no
 * part comes near the frame limit (1 MiB): a part that passed it would fail on every honest
 * session it went to, again at every check.
 */
export const MAX_PRESENCE_STATES = 2_048;
export const MAX_PRESENCE_STATE_BYTES = 2_048;
export const MAX_UPDATE_STATES = 400;
export const MAX_UPDATE_BYTES = 256 * 1024;

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

/**
 * A removal (an entry without a state: a node that left, a state that timed out or was
 * superseded) is kept this long, so that an older copy of the state relayed late cannot bring it
 * back, then forgotten. As long as the longest state timeout: by then no peer still renews it.
 */
export const REMOVAL_TIMEOUT_MS = SPARSE_TIMEOUT_MS;

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
  /** timers.now() of each state's last renewal (ours included), oldest first (`renew`). */
  private readonly renewedAt = new Map<number, number>();
  /** timers.now() at which each removal held (an entry without a state) was made, oldest first. */
  private readonly removedAt = new Map<number, number>();
  private checkTimer: TimerHandle | undefined;
  private destroyed = false;
  private readonly sparse: () => boolean;
  private readonly onIgnored: (reason: 'size' | 'cap', entries: number) => void;
  private wasSparse = false;
  /** Sparse mode: per direct peer (replica id), the clock of each client it is known to hold. */
  private readonly peerClocks = new Map<string, Map<number, number>>();
  /**
   * Sparse mode: the direct peers that were offered every entry held once (at their first check),
   * and the clients whose entries changed since the last check. A peer offered everything once
   * only lacks what changed since, so a check costs the changes, not every entry per peer.
   */
  private readonly walked = new Set<string>();
  private readonly dirty = new Set<number>();
  /** The clients whose states claim each replica id (for the renewal of direct peers). */
  private readonly clientsOfReplica = new Map<string, Set<number>>();
  private readonly replicaOf = new Map<number, string>();
  /**
   * For dropSuperseded: the held states with an address, by `name\naddress` (client → startedAt),
   * each client's key, and the keys whose states changed since it last ran. Kept from the
   * awareness 'update' event, so an update costs its own entries, not a scan of every state.
   */
  private readonly runsByKey = new Map<string, Map<number, number>>();
  private readonly keyOf = new Map<number, string>();
  private readonly changedKeys = new Set<string>();
  /** The state object each client was filed under (index), so that a renewal is not filed again. */
  private readonly indexed = new Map<number, unknown>();
  /** The JSON of each remote state held, as it came: sent on as it is instead of made again. */
  private readonly json = new Map<number, string>();

  /** `peers()` lists the open sessions: changes of our own go to each of them. */
  constructor(
    local: NodePresence,
    private readonly peers: () => Iterable<PresencePeer>,
    options: PresenceOptions,
  ) {
    this.timers = options.timers;
    this.sparse = options.sparse ?? (() => false);
    this.onIgnored = options.onIgnored ?? (() => {});
    this.doc = new Y.Doc();
    // Before the awareness is made: it takes its client id from the document.
    this.doc.clientID = options.clientId >>> 0;
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    clearInterval(this.awareness._checkInterval as ReturnType<typeof setInterval>);
    this.awareness.on('update', (change: AwarenessChange) => {
      const now = this.timers.now();
      for (const client of [...change.added, ...change.updated]) {
        this.renew(client, now);
        this.removedAt.delete(client);
        this.dirty.add(client);
      }
      for (const client of change.removed) {
        this.dirty.add(client);
        this.renewedAt.delete(client);
        this.removedAt.delete(client);
        this.removedAt.set(client, now);
      }
      for (const client of change.removed) {
        this.unindex(client);
        this.json.delete(client);
      }
      // Our own state changes through the library: its JSON is made again when next sent.
      this.json.delete(this.awareness.clientID);
      // A renewal keeps the state object (see `apply`): filed already.
      for (const client of [...change.added, ...change.updated]) if (this.indexed.get(client) !== this.awareness.states.get(client)) this.index(client);
    });
    // Only our own changes are sent (renewals and remote updates are not: see above).
    this.awareness.on('change', (_change: AwarenessChange, origin: unknown) => {
      if (origin !== 'local' || this.destroyed) return;
      const own = this.awareness.clientID;
      // The library emits 'change' before 'update': the JSON held for our state is the one before
      // this change (a departure sent with it would read as a renewal and keep us listed).
      this.json.delete(own);
      const parts = this.encode([own]);
      const clock = this.awareness.meta.get(own)?.clock ?? 0;
      for (const peer of this.peers()) {
        for (const part of parts) peer.send(part);
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
      this.wasSparse = true;
      this.checkSparse();
      return;
    }
    this.peerClocks.clear();
    this.walked.clear();
    this.dirty.clear();
    const now = this.timers.now();
    if (this.wasSparse) {
      // Back to the mesh: states renewed at the sparse pace get the mesh's timeout from now, so
      // the switch does not drop every member heard of more than 30 s ago at once.
      this.wasSparse = false;
      for (const client of [...this.renewedAt.keys()]) this.renew(client, now);
    }
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
          this.renew(client, now);
        }
      } else {
        indirect.push(client);
      }
    }
    this.dropUnrenewed(now, PRESENCE_TIMEOUT_MS);

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

  /** Files a renewal at the end of `renewedAt`, which so stays in the order of renewal. */
  private renew(client: number, now: number): void {
    this.renewedAt.delete(client);
    this.renewedAt.set(client, now);
  }

  /** Removes the states (not ours) not renewed for `timeoutMs`, and forgets the removals older than REMOVAL_TIMEOUT_MS. */
  private dropUnrenewed(now: number, timeoutMs: number): void {
    const own = this.awareness.clientID;
    const outdated: number[] = [];
    // Oldest renewal first: the first one within the timeout ends the walk.
    for (const [client, at] of this.renewedAt) {
      if (client === own) continue;
      if (now - at < timeoutMs) break;
      if (this.awareness.states.has(client)) outdated.push(client);
    }
    if (outdated.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, outdated, 'timeout');
    // Oldest first (each removal is filed again at its end when it is made).
    for (const [client, at] of this.removedAt) {
      if (now - at < REMOVAL_TIMEOUT_MS) break;
      this.forget(client);
    }
  }

  /** Forgets a removal: its entry (the library keeps one for every client it heard of) and what peers are known to hold of it. */
  private forget(client: number): void {
    this.removedAt.delete(client);
    if (this.awareness.states.has(client) || client === this.awareness.clientID) return;
    this.awareness.meta.delete(client);
    this.dirty.delete(client);
    for (const known of this.peerClocks.values()) known.delete(client);
  }

  /** The entries of `clients` held (states and removals) as updates of bounded size (`encodeParts`). */
  private encode(clients: Iterable<number>): Uint8Array[] {
    const entries: Entry[] = [];
    for (const client of clients) {
      const meta = this.awareness.meta.get(client);
      if (meta === undefined) continue;
      let state = this.json.get(client);
      if (state === undefined) {
        state = JSON.stringify(this.awareness.states.get(client) ?? null);
        if (this.awareness.states.has(client)) this.json.set(client, state);
      }
      entries.push({ client, clock: meta.clock, state });
    }
    return encodeParts(entries);
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
      if (relayed.length > 0) for (const part of this.encode(relayed)) peer.send(part);
    }
  }

  /** The check in sparse mode: renew direct peers, drop what timed out, step our clock, send each peer what it lacks. */
  private checkSparse(): void {
    const now = this.timers.now();
    const own = this.awareness.clientID;
    const direct = new Map<string, PresencePeer>();
    for (const peer of this.peers()) direct.set(peer.replica, peer);
    for (const replica of direct.keys()) {
      // One state per direct peer is renewed by its session (as in the mesh).
      for (const client of this.clientsOfReplica.get(replica) ?? []) {
        if (client === own) continue;
        this.renew(client, now);
        break;
      }
    }
    this.dropUnrenewed(now, SPARSE_TIMEOUT_MS);
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
    for (const replica of [...this.walked]) if (!direct.has(replica)) this.walked.delete(replica);
    const { meta } = this.awareness;
    for (const [replica, peer] of direct) {
      const known = this.peerClocks.get(replica) ?? new Map<number, number>();
      this.peerClocks.set(replica, known);
      const lacking: number[] = [];
      for (const client of this.walked.has(replica) ? this.dirty : meta.keys()) {
        const clock = meta.get(client)?.clock;
        if (clock !== undefined && (known.get(client) ?? -1) < clock) lacking.push(client);
      }
      this.walked.add(replica);
      if (lacking.length === 0) continue;
      for (const part of this.encode(lacking)) peer.send(part);
      for (const client of lacking) known.set(client, meta.get(client)!.clock);
    }
    this.dirty.clear();
  }

  private scheduleCheck(): void {
    if (this.destroyed) return;
    this.checkTimer = this.timers.setTimeout(() => {
      this.check();
      this.scheduleCheck();
    }, PRESENCE_CHECK_MS);
  }

  /**
   * Applies an update from a peer; throws on a malformed one (a clock above MAX_AWARENESS_CLOCK,
   * more than MAX_UPDATE_STATES entries): the caller drops that peer. What only goes past a bound
   * held here is ignored instead (counted through `onIgnored`), never thrown on: such an update
   * is usually relayed by an honest node, which a throw would cut off. A state over
   * MAX_PRESENCE_STATE_BYTES is ignored; so are new states past MAX_PRESENCE_STATES, except the
   * sending peer's own (see `admitted`), and removals of clients never held past the room left.
   * So states and removals held together never pass MAX_PRESENCE_STATES.
   */
  applyRemote(update: Uint8Array, origin: unknown, from?: string): void {
    const own = this.awareness.clientID;
    const all = entriesOf(update).filter((entry) => entry.client !== own);
    if (all.length > MAX_UPDATE_STATES) throw new RangeError(`presence update of ${all.length} states; at most ${MAX_UPDATE_STATES} a frame`);
    let oversize = 0;
    const theirs = all.filter((entry) => {
      // A character takes at most 3 bytes (a surrogate pair 4 for two): short states need no count.
      if (entry.state.length * 3 <= MAX_PRESENCE_STATE_BYTES || utf8Bytes(entry.state) <= MAX_PRESENCE_STATE_BYTES) return true;
      oversize++;
      return false;
    });
    if (oversize > 0) this.onIgnored('size', oversize);
    if (theirs.length === 0) return;
    const { states, meta } = this.awareness;
    const inUpdate = new Set<number>();
    const added: number[] = []; // states of clients without one held, in order
    const addedSet = new Set<number>();
    const removals = new Set<number>(); // removals of clients without an entry held
    for (const entry of theirs) {
      inUpdate.add(entry.client);
      if (!isRemoval(entry.state)) {
        if (!states.has(entry.client) && !addedSet.has(entry.client)) {
          addedSet.add(entry.client);
          added.push(entry.client);
        }
      } else if (!meta.has(entry.client)) {
        removals.add(entry.client);
      }
    }
    // A client with a state in the update is a state, whatever else the update says of it.
    for (const client of added) removals.delete(client);
    const admitted = this.admitted(added, theirs, inUpdate, from);
    // Room in the entries for new ones: the oldest removals are forgotten first (never one this
    // update names: it would come back in uncounted).
    let fresh = admitted.filter((client) => !meta.has(client));
    let over = meta.size + fresh.length - MAX_PRESENCE_STATES;
    for (const client of this.removedAt.keys()) {
      if (over <= 0) break;
      if (inUpdate.has(client) || states.has(client) || !meta.has(client)) continue;
      this.forget(client);
      over--;
    }
    // Removals this update re-sends stay: what they leave no room for is not taken.
    if (over > 0) {
      const refused = new Set(fresh.slice(fresh.length - over));
      fresh = fresh.filter((client) => !refused.has(client));
      for (let i = admitted.length - 1; i >= 0; i--) if (refused.has(admitted[i]!)) admitted.splice(i, 1);
    }
    const room = Math.max(0, MAX_PRESENCE_STATES - meta.size - fresh.length);
    const taken = new Set(admitted);
    const ignored = new Set<number>([...added.filter((client) => !taken.has(client)), ...[...removals].slice(room)]);
    let kept = theirs;
    if (ignored.size > 0) {
      this.onIgnored('cap', ignored.size);
      kept = theirs.filter((entry) => !ignored.has(entry.client));
      if (kept.length === 0) return;
    }
    // An entry at the clock we hold is a renewal relayed by a peer that hears that node.
    const now = this.timers.now();
    for (const entry of kept) {
      if (!isRemoval(entry.state) && states.has(entry.client) && meta.get(entry.client)?.clock === entry.clock) this.renew(entry.client, now);
    }
    this.apply(kept, origin);
    // A removal of a client never held emits nothing: filed here.
    for (const entry of kept) {
      if (!states.has(entry.client) && meta.has(entry.client) && !this.removedAt.has(entry.client)) {
        this.removedAt.set(entry.client, now);
        this.dirty.add(entry.client);
      }
    }
    if (from !== undefined && this.sparse()) {
      // What the peer sent, it holds: never sent back to it.
      const known = this.peerClocks.get(from) ?? new Map<number, number>();
      this.peerClocks.set(from, known);
      for (const entry of kept) if (meta.has(entry.client) && (known.get(entry.client) ?? -1) < entry.clock) known.set(entry.client, entry.clock);
    }
    this.dropSuperseded();
  }

  /**
   * Of the new states `added` (clients without a state held), those there is room for under
   * MAX_PRESENCE_STATES, in order. Past the bound, the state of the sending peer itself (one that
   * claims the replica id of `from`, the session's peer) is still taken, at most one an update
   * and while at most one other state claims that replica: a state not of this node nor of a
   * direct peer, the least recently renewed, is dropped here to make room (not removed
   * elsewhere). So a node filled with states from elsewhere still holds each of its direct
   * peers, and a newcomer is never refused.
   */
  private admitted(added: readonly number[], entries: readonly Entry[], inUpdate: ReadonlySet<number>, from: string | undefined): number[] {
    const room = Math.max(0, MAX_PRESENCE_STATES - this.awareness.states.size);
    if (added.length <= room) return [...added];
    const admitted = added.slice(0, room);
    if (from === undefined || (this.clientsOfReplica.get(from)?.size ?? 0) >= 2) return admitted;
    const candidates = new Set(added);
    const peer = entries.find((entry) => candidates.has(entry.client) && !isRemoval(entry.state) && replicaOfState(entry.state) === from);
    if (peer === undefined || admitted.includes(peer.client)) return admitted;
    const protectedClients = new Set<number>([this.awareness.clientID]);
    for (const direct of this.peers()) for (const client of this.clientsOfReplica.get(direct.replica) ?? []) protectedClients.add(client);
    let victim: number | undefined;
    for (const client of this.renewedAt.keys()) {
      if (this.awareness.states.has(client) && !protectedClients.has(client) && !inUpdate.has(client)) {
        victim = client;
        break;
      }
    }
    if (victim === undefined) return admitted;
    this.evict(victim);
    admitted.push(peer.client);
    return admitted;
  }

  /** Drops a state here only, without a trace (no removal is kept or sent): a relay may bring it back when there is room. */
  private evict(client: number): void {
    this.awareness.states.delete(client);
    this.awareness.meta.delete(client);
    this.renewedAt.delete(client);
    this.removedAt.delete(client);
    this.json.delete(client);
    this.unindex(client);
    this.dirty.delete(client);
    for (const known of this.peerClocks.values()) known.delete(client);
  }

  /**
   * The library's `applyAwarenessUpdate` on entries decoded already (it would decode and parse
   * the update again): a state whose JSON is the one held (a renewal: a clock step) keeps its
   * object and is not parsed again. Own entries are gone by now (`applyRemote`).
   */
  private apply(entries: readonly Entry[], origin: unknown): void {
    const { states, meta } = this.awareness;
    const now = this.timers.now();
    const added: number[] = [];
    const updated: number[] = [];
    const changed: number[] = [];
    const removed: number[] = [];
    for (const { client, clock, state } of entries) {
      const current = meta.get(client);
      const held = current?.clock ?? 0;
      const removal = isRemoval(state);
      if (!(held < clock || (held === clock && removal && states.has(client)))) continue;
      if (removal) {
        states.delete(client);
        this.json.delete(client);
      } else if (this.json.get(client) !== state || !states.has(client)) {
        states.set(client, JSON.parse(state) as unknown as Record<string, unknown>);
        this.json.set(client, state);
        if (current !== undefined) changed.push(client);
      }
      meta.set(client, { clock, lastUpdated: now });
      if (current === undefined && !removal) added.push(client);
      else if (current !== undefined && removal) removed.push(client);
      else if (!removal) updated.push(client);
    }
    if (added.length > 0 || changed.length > 0 || removed.length > 0) this.awareness.emit('change', [{ added, updated: changed, removed }, origin]);
    if (added.length > 0 || updated.length > 0 || removed.length > 0) this.awareness.emit('update', [{ added, updated, removed }, origin]);
  }

  /** Entries held: states, and removals not yet forgotten (at most MAX_PRESENCE_STATES together). */
  held(): { states: number; removals: number } {
    return { states: this.awareness.states.size, removals: this.awareness.meta.size - this.awareness.states.size };
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
    const state = this.awareness.states.get(clientId);
    this.indexed.set(clientId, state);
    const replica = (state as { replicaId?: unknown } | undefined)?.replicaId;
    if (typeof replica === 'string') {
      const clients = this.clientsOfReplica.get(replica) ?? new Set<number>();
      this.clientsOfReplica.set(replica, clients);
      clients.add(clientId);
      this.replicaOf.set(clientId, replica);
    }
    const member = parseMember(state);
    if (member?.address === undefined) return;
    const key = `${member.name}\n${member.address}`;
    const runs = this.runsByKey.get(key) ?? new Map<number, number>();
    this.runsByKey.set(key, runs);
    runs.set(clientId, member.startedAt);
    this.keyOf.set(clientId, key);
    this.changedKeys.add(key);
  }

  private unindex(clientId: number): void {
    this.indexed.delete(clientId);
    const replica = this.replicaOf.get(clientId);
    if (replica !== undefined) {
      this.replicaOf.delete(clientId);
      const clients = this.clientsOfReplica.get(replica);
      clients?.delete(clientId);
      if (clients?.size === 0) this.clientsOfReplica.delete(replica);
    }
    const key = this.keyOf.get(clientId);
    if (key === undefined) return;
    this.keyOf.delete(clientId);
    const runs = this.runsByKey.get(key);
    runs?.delete(clientId);
    if (runs?.size === 0) this.runsByKey.delete(key);
  }

  /**
   * Our own state, for a session that just opened (it is sent the rest if it holds fewer members:
   * see `relay`). What the peer `replica` was known to hold is forgotten: a session that opens
   * again (the peer restarted) starts from nothing.
   */
  ownUpdate(replica?: string): Uint8Array {
    if (replica !== undefined) {
      this.peerClocks.delete(replica);
      this.walked.delete(replica);
    }
    return this.encode([this.awareness.clientID])[0]!;
  }

  /** Every known state, in updates of at most MAX_UPDATE_STATES entries and MAX_UPDATE_BYTES bytes. */
  fullUpdate(): Uint8Array[] {
    return this.encode(this.awareness.getStates().keys());
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
