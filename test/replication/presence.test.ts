import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import * as decoding from 'lib0/decoding';
import { encodeMessage } from '../../src/protocol/codec.js';
import {
  encodeParts,
  MAX_PRESENCE_STATE_BYTES,
  MAX_PRESENCE_STATES,
  MAX_UPDATE_BYTES,
  MAX_UPDATE_STATES,
  Presence,
  PRESENCE_CHECK_MS,
  REMOVAL_TIMEOUT_MS,
  SPARSE_TIMEOUT_MS,
  utf8Bytes,
} from '../../src/replication/presence.js';
import { VirtualTimers } from '../../src/virtual-timers.js';

type Entry = { client: number; clock: number; state: Record<string, unknown> | null };

function update(entries: Entry[]): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const entry of entries) {
    encoding.writeVarUint(encoder, entry.client);
    encoding.writeVarUint(encoder, entry.clock);
    encoding.writeVarString(encoder, JSON.stringify(entry.state));
  }
  return encoding.toUint8Array(encoder);
}

const run = (name: string, startedAt: number, address = `${name}:7000`) => ({ name, replicaId: `r-${name}-${startedAt}`, version: '1', startedAt, address });

function presence() {
  const p = new Presence(run('self', 1), () => [], { timers: new VirtualTimers(), clientId: 1 });
  const clients = () => p.members().map((m) => m.clientId).sort((a, b) => a - b);
  return { p, clients };
}

describe('presence drops a superseded run of a node (same name and address, started earlier)', () => {
  it('keeps the later run whichever arrives first, in one update or in two', () => {
    const { p, clients } = presence();
    p.applyRemote(update([{ client: 10, clock: 1, state: run('a', 100) }, { client: 11, clock: 1, state: run('b', 100) }]), 'peer');
    expect(clients()).toEqual([1, 10, 11]);
    p.applyRemote(update([{ client: 12, clock: 1, state: run('a', 200) }]), 'peer');
    expect(clients()).toEqual([1, 11, 12]);
    // An older run arriving late is dropped at once.
    p.applyRemote(update([{ client: 13, clock: 1, state: run('a', 150) }, { client: 14, clock: 1, state: run('b', 50) }]), 'peer');
    expect(clients()).toEqual([1, 11, 12]);
    // Another address is another node.
    p.applyRemote(update([{ client: 15, clock: 1, state: run('a', 10, 'elsewhere:7000') }]), 'peer');
    expect(clients()).toEqual([1, 11, 12, 15]);
  });

  it('a state that changes its name or address is filed again; runs started at the same instant keep the first held', () => {
    const { p, clients } = presence();
    p.applyRemote(update([{ client: 20, clock: 1, state: run('c', 100) }, { client: 21, clock: 1, state: run('d', 100) }]), 'peer');
    p.applyRemote(update([{ client: 21, clock: 2, state: run('c', 100) }]), 'peer');
    expect(clients()).toEqual([1, 20]);
    p.applyRemote(update([{ client: 22, clock: 1, state: run('e', 5) }]), 'peer');
    p.applyRemote(update([{ client: 22, clock: 2, state: run('f', 5) }, { client: 23, clock: 1, state: run('e', 1) }]), 'peer');
    expect(clients()).toEqual([1, 20, 22, 23]);
    // A removed run no longer counts.
    p.applyRemote(update([{ client: 20, clock: 2, state: null }, { client: 24, clock: 1, state: run('c', 50) }]), 'peer');
    expect(clients()).toEqual([1, 22, 23, 24]);
  });

  it('never drops its own state, even when a later run of the same name and address appears', () => {
    const { p, clients } = presence();
    p.applyRemote(update([{ client: 30, clock: 1, state: run('self', 5) }]), 'peer');
    expect(clients()).toEqual([1, 30]);
    p.applyRemote(update([{ client: 31, clock: 1, state: run('self', 0) }]), 'peer');
    expect(clients()).toEqual([1, 30]);
  });
});

/** The entries of an update (client, clock, state JSON). */
function entries(u: Uint8Array): Array<{ client: number; clock: number; state: string }> {
  const decoder = decoding.createDecoder(u);
  const out = [];
  for (let n = decoding.readVarUint(decoder); n > 0; n--) out.push({ client: decoding.readVarUint(decoder), clock: decoding.readVarUint(decoder), state: decoding.readVarString(decoder) });
  return out;
}

/** A presence with two direct peers, `hostile` and `honest`, recording every update sent to each (each encoded as a frame: one past the limit throws there). */
function withPeers(sparse: boolean) {
  const timers = new VirtualTimers();
  const sent: Record<string, Uint8Array[]> = { hostile: [], honest: [] };
  const peers = () => ['hostile', 'honest'].map((replica) => ({ replica, send: (u: Uint8Array) => void (encodeMessage({ type: 'awareness', update: u }), sent[replica]!.push(u)) }));
  const p = new Presence(run('self', 1), peers, { timers, clientId: 1, sparse: () => sparse });
  let now = 0;
  const advance = (ms: number) => {
    now += ms;
    while (timers.runDue(now));
  };
  return { p, sent, advance };
}

/** Of 3-byte characters: 2,038 characters (under 2,048), 6 KB of UTF-8. */
const wide = (chars: number) => '\u4e00'.repeat(chars);

describe('presence bounds (review h18 #4, #5)', () => {
  it('counts a state in UTF-8 bytes: 2,038 characters of 3 bytes are ignored (not thrown on: review r18p #3), 679 are taken', () => {
    const ignored: Array<[string, number]> = [];
    const p = new Presence(run('self', 1), () => [], { timers: new VirtualTimers(), clientId: 1, onIgnored: (reason, n) => void ignored.push([reason, n]) });
    const big = { pad: wide(2_030) };
    expect(JSON.stringify(big).length).toBeLessThanOrEqual(MAX_PRESENCE_STATE_BYTES);
    // An old node (bounded in characters) relays it with a legal state: the legal one is taken.
    p.applyRemote(update([{ client: 10, clock: 1, state: big }, { client: 11, clock: 1, state: run('ok', 1) }]), 'peer');
    expect(p.members().map((m) => m.clientId)).toEqual([11, 1]);
    expect(ignored).toEqual([['size', 1]]);
    const fits = { pad: wide(679) };
    expect(utf8Bytes(JSON.stringify(fits))).toBeLessThanOrEqual(MAX_PRESENCE_STATE_BYTES);
    p.applyRemote(update([{ client: 10, clock: 1, state: fits }]), 'peer');
    expect(p.held().states).toBe(3);
    expect(utf8Bytes('a\u00e9\u4e00\ud83d\ude00\ud800')).toBe(1 + 2 + 3 + 4 + 3);
  });

  it('splits what it sends by encoded size: parts of the largest states allowed, mesh and sparse, each within MAX_UPDATE_BYTES', () => {
    for (const sparse of [false, true]) {
      const { p, sent, advance } = withPeers(sparse);
      const state = (i: number) => ({ name: `n${i}`, pad: wide(670) });
      for (let f = 0; f < 3; f++) p.applyRemote(update(Array.from({ length: 150 }, (_, i) => ({ client: 100 + f * 150 + i, clock: 1, state: state(f * 150 + i) }))), 'peer', 'hostile');
      // The honest peer holds fewer members (mesh: it sends its state saying so), so it is sent everything.
      p.applyRemote(update([{ client: 5, clock: 1, state: { ...run('honest', 1), replicaId: 'honest', members: 2 } }]), 'peer', 'honest');
      advance(PRESENCE_CHECK_MS);
      const parts = sent.honest!;
      expect(parts.length).toBeGreaterThan(1);
      for (const part of parts) expect(part.byteLength).toBeLessThanOrEqual(MAX_UPDATE_BYTES);
      const clients = new Set(parts.flatMap((part) => entries(part).map((entry) => entry.client)));
      for (let i = 0; i < 450; i++) expect(clients.has(100 + i)).toBe(true);
    }
  });

  it('encodeParts keeps every part within the entry and byte bounds whatever the entries', () => {
    const many = Array.from({ length: 1_000 }, (_, i) => ({ client: i, clock: 1, state: JSON.stringify({ pad: wide(i % 3 === 0 ? 2_030 : 10) }) }));
    const parts = encodeParts(many);
    for (const part of parts) {
      expect(part.byteLength).toBeLessThanOrEqual(MAX_UPDATE_BYTES);
      expect(entries(part).length).toBeLessThanOrEqual(MAX_UPDATE_STATES);
    }
    expect(parts.flatMap(entries).map((entry) => entry.client)).toEqual(many.map((entry) => entry.client));
    expect(encodeParts([])).toEqual([]);
  });

  it('encodeParts writes what lib0 writes: any characters, lengths across the varUint steps, clocks up to 2^48', () => {
    const strings = ['null', '{}', JSON.stringify({ a: 'x'.repeat(126) }), JSON.stringify({ a: 'x'.repeat(200) }), JSON.stringify({ w: wide(5_000) }), JSON.stringify({ w: wide(42) }), '{"e":"\ud83d\ude00\ud800x"}', '{"l":"' + '\u00e9'.repeat(8_200) + '"}'];
    const list = strings.map((state, i) => ({ client: [0, 127, 128, 2 ** 32 - 1][i % 4]!, clock: [1, 2 ** 48, 16_383, 16_384][i % 4]!, state }));
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, list.length);
    for (const entry of list) {
      encoding.writeVarUint(encoder, entry.client);
      encoding.writeVarUint(encoder, entry.clock);
      encoding.writeVarString(encoder, entry.state);
    }
    expect(encodeParts(list)).toEqual([encoding.toUint8Array(encoder)]);
  });

  it('encodeParts throws instead of writing a cut update when entries pass the bounds its buffer is sized for (review r18p #7)', () => {
    // Clients and clocks near 2^53 (8 bytes each, past the uint32 and 2^48 the buffer counts on)
    // with states all of 3-byte characters (encodeParts takes any string): the worst-case buffer is too short.
    const list = Array.from({ length: 20 }, (_, i) => ({ client: 2 ** 53 - 1 - i, clock: 2 ** 53 - 1, state: wide(60) }));
    expect(() => encodeParts(list)).toThrow(/too short|buffer of/);
  });

  it('removals of unknown clients count against MAX_PRESENCE_STATES: past it they are ignored, not kept, not passed on', () => {
    const { p, sent, advance } = withPeers(true);
    for (let f = 0; f < 20; f++) p.applyRemote(update(Array.from({ length: 400 }, (_, i) => ({ client: 10_000 + f * 400 + i, clock: 1, state: null }))), 'peer', 'hostile');
    const held = p.held();
    expect(held.states).toBe(1);
    expect(held.states + held.removals).toBe(MAX_PRESENCE_STATES);
    advance(PRESENCE_CHECK_MS);
    const relayed = sent.honest!.flatMap(entries).filter((entry) => entry.state === 'null');
    expect(relayed.length).toBe(MAX_PRESENCE_STATES - 1);
    // Removals make room for states: the oldest are forgotten first.
    p.applyRemote(update(Array.from({ length: 10 }, (_, i) => ({ client: 500 + i, clock: 1, state: run(`m${i}`, 1) }))), 'peer', 'hostile');
    expect(p.held()).toEqual({ states: 11, removals: MAX_PRESENCE_STATES - 11 });
    // Forgotten after REMOVAL_TIMEOUT_MS (the ten states, never renewed, time out meanwhile and
    // are removals of their own): no check sends anything of them again.
    sent.honest!.length = 0;
    advance(REMOVAL_TIMEOUT_MS);
    expect(p.held().removals).toBeLessThanOrEqual(10);
    expect(sent.honest!.flatMap(entries).filter((entry) => entry.client >= 10_000)).toEqual([]);
  });

  it('a removal held stops an older copy of the state from coming back until it is forgotten', () => {
    const { p, advance } = withPeers(false);
    p.applyRemote(update([{ client: 40, clock: 3, state: run('gone', 1) }]), 'peer');
    p.applyRemote(update([{ client: 40, clock: 4, state: null }]), 'peer');
    p.applyRemote(update([{ client: 40, clock: 3, state: run('gone', 1) }]), 'peer');
    expect(p.members().map((m) => m.name)).toEqual(['self']);
    expect(p.held()).toEqual({ states: 1, removals: 1 });
    advance(REMOVAL_TIMEOUT_MS + PRESENCE_CHECK_MS);
    expect(p.held()).toEqual({ states: 1, removals: 0 });
  });

  it('states of a timed-out member leave a removal that is forgotten in time (the mesh no longer keeps every client it heard of)', () => {
    const { p, advance } = withPeers(false);
    p.applyRemote(update(Array.from({ length: 50 }, (_, i) => ({ client: 60 + i, clock: 1, state: run(`t${i}`, 1) }))), 'peer');
    expect(p.held().states).toBe(51);
    advance(40_000);
    expect(p.held()).toEqual({ states: 1, removals: 50 });
    advance(REMOVAL_TIMEOUT_MS);
    expect(p.held()).toEqual({ states: 1, removals: 0 });
  });
});

describe('presence past the state cap (review r18p #1, #2)', () => {
  const fake = (i: number) => ({ client: 1_000 + i, clock: 1, state: { name: `f${i}`, replicaId: `x${i}`, version: '1', startedAt: 1 } });
  const inParts = (list: Entry[]) => Array.from({ length: Math.ceil(list.length / MAX_UPDATE_STATES) }, (_, i) => update(list.slice(i * MAX_UPDATE_STATES, (i + 1) * MAX_UPDATE_STATES)));

  it('new states past the cap are ignored, never thrown on; a direct peer\'s own state is still taken (a state from elsewhere makes room), mesh and sparse', () => {
    for (const sparse of [false, true]) {
      const timers = new VirtualTimers();
      const ignored: number[] = [];
      const p = new Presence(run('self', 1), () => ['hostile', 'newcomer'].map((replica) => ({ replica, send: () => {} })), {
        timers,
        clientId: 1,
        sparse: () => sparse,
        onIgnored: (reason, n) => void (reason === 'cap' && ignored.push(n)),
      });
      let now = 0;
      const advance = (ms: number) => {
        now += ms;
        while (timers.runDue(now));
      };
      // The hostile peer sends more than the cap and keeps them alive by re-sending them.
      const fakes = Array.from({ length: MAX_PRESENCE_STATES + 100 }, (_, i) => fake(i));
      for (let t = 0; t < 5; t++) {
        for (const part of inParts(fakes)) expect(() => p.applyRemote(part, 'h', 'hostile')).not.toThrow();
        advance(PRESENCE_CHECK_MS);
      }
      expect(p.held().states).toBe(MAX_PRESENCE_STATES);
      expect(ignored.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(101);
      // The newcomer's own state (its replica id is its session's) is taken; a fake goes.
      p.applyRemote(update([{ client: 7, clock: 1, state: { ...run('newcomer', 5), replicaId: 'newcomer' } }]), 'n', 'newcomer');
      expect(p.members().some((m) => m.clientId === 7)).toBe(true);
      expect(p.held().states).toBe(MAX_PRESENCE_STATES);
      // It stays: its session renews it, and the fakes re-sent find no room.
      for (let t = 0; t < 3; t++) {
        for (const part of inParts(fakes)) p.applyRemote(part, 'h', 'hostile');
        advance(PRESENCE_CHECK_MS);
      }
      expect(p.members().some((m) => m.clientId === 7)).toBe(true);
      // A second state claiming the newcomer's replica is taken too (a restart), a third is not.
      p.applyRemote(update([{ client: 8, clock: 1, state: { ...run('newcomer-b', 6), replicaId: 'newcomer' } }]), 'n', 'newcomer');
      p.applyRemote(update([{ client: 9, clock: 1, state: { ...run('newcomer-c', 7), replicaId: 'newcomer' } }]), 'n', 'newcomer');
      expect(p.members().filter((m) => m.replicaId === 'newcomer').map((m) => m.clientId)).toEqual([7, 8]);
      const held = p.held();
      expect(held.states + held.removals).toBeLessThanOrEqual(MAX_PRESENCE_STATES);
    }
  });

  it('a hostile peer filling one node does not get its honest peers to refuse that node\'s relays', () => {
    const timers = new VirtualTimers();
    const failures: string[] = [];
    const nodes = new Map<string, Presence>();
    const links = new Map([['a', ['b']], ['b', ['a', 'd']], ['d', ['b']]]);
    const link = (from: string, to: string) => ({
      replica: `r-${to}`,
      send: (u: Uint8Array) => {
        try {
          nodes.get(to)?.applyRemote(u, 'peer', `r-${from}`);
        } catch (error) {
          failures.push(`${to} refused ${from}: ${String(error)}`);
        }
      },
    });
    for (const [name, clientId] of [['a', 1], ['b', 2], ['d', 4]] as const) {
      nodes.set(name, new Presence({ name, replicaId: `r-${name}`, version: '1', startedAt: 1, address: `${name}:1` }, () => links.get(name)!.map((to) => link(name, to)), { timers, clientId }));
    }
    const a = nodes.get('a')!;
    const b = nodes.get('b')!;
    const d = nodes.get('d')!;
    b.applyRemote(a.ownUpdate('r-b'), 'peer', 'r-a');
    a.applyRemote(b.ownUpdate('r-a'), 'peer', 'r-b');
    b.applyRemote(d.ownUpdate('r-b'), 'peer', 'r-d');
    d.applyRemote(b.ownUpdate('r-d'), 'peer', 'r-b');
    let now = 0;
    const fakes = Array.from({ length: MAX_PRESENCE_STATES - 2 }, (_, i) => fake(i));
    for (let t = 0; t < 5; t++) {
      for (const part of inParts(fakes)) a.applyRemote(part, 'h', 'r-hostile');
      now += PRESENCE_CHECK_MS;
      while (timers.runDue(now));
    }
    // Before: "presence would hold 2049 members" at b, at 4 checks of 5.
    expect(failures).toEqual([]);
    for (const node of [a, b, d]) {
      const held = node.held();
      expect(held.states + held.removals).toBeLessThanOrEqual(MAX_PRESENCE_STATES);
    }
    expect(b.members().map((m) => m.name).filter((name) => !name.startsWith('f'))).toEqual(['a', 'b', 'd']);
  });

  it('states and removals held stay within MAX_PRESENCE_STATES after every update, tombstones re-sent among new states included', () => {
    const p = new Presence(run('self', 1), () => [], { timers: new VirtualTimers(), clientId: 1, sparse: () => true });
    const tombstones = Array.from({ length: MAX_PRESENCE_STATES - 1 }, (_, i) => ({ client: 10_000 + i, clock: 1, state: null }));
    for (const part of inParts(tombstones)) p.applyRemote(part, 'h', 'x');
    expect(p.held()).toEqual({ states: 1, removals: MAX_PRESENCE_STATES - 1 });
    let clock = 2;
    for (let r = 0; r < 12; r++) {
      const list: Entry[] = [];
      for (let k = 0; k < 200; k++) list.push({ client: 50_000 + r * 200 + k, clock: 1, state: run(`f${r}-${k}`, 1) });
      // The oldest removals held (the first a forget pass takes), re-sent at a higher clock.
      for (let k = 0; k < 200; k++) list.push({ client: 10_000 + ((r * 200 + k) % (MAX_PRESENCE_STATES - 1)), clock: clock, state: null });
      clock++;
      p.applyRemote(update(list), 'h', 'x');
      const held = p.held();
      // Before: 2,248 after the first such update.
      expect(held.states + held.removals).toBeLessThanOrEqual(MAX_PRESENCE_STATES);
    }
    expect(p.held().states).toBeGreaterThan(1);
  });
});

describe('presence across mode switches and reconnects (review h18 #8)', () => {
  it('a switch from sparse to the mesh keeps the members renewed at the sparse pace', () => {
    const timers = new VirtualTimers();
    let sparse = true;
    const p = new Presence(run('self', 1), () => [], { timers, clientId: 1, sparse: () => sparse });
    p.applyRemote(update([{ client: 70, clock: 1, state: run('far', 1) }]), 'peer');
    let now = 0;
    const advance = (ms: number) => {
      now += ms;
      while (timers.runDue(now));
    };
    advance(60_000);
    expect(p.members().map((m) => m.name)).toEqual(['far', 'self']);
    sparse = false;
    advance(PRESENCE_CHECK_MS);
    expect(p.members().map((m) => m.name)).toEqual(['far', 'self']);
    // From then on, the mesh's timeout.
    advance(30_000);
    expect(p.members().map((m) => m.name)).toEqual(['self']);
  });

  it('a sparse peer whose session opens again is sent everything again', () => {
    const timers = new VirtualTimers();
    const sent: Uint8Array[] = [];
    const p = new Presence(run('self', 1), () => [{ replica: 'peer', send: (u: Uint8Array) => void sent.push(u) }], { timers, clientId: 1, sparse: () => true });
    p.applyRemote(update([{ client: 80, clock: 1, state: run('other', 1) }]), 'x', 'elsewhere');
    let now = 0;
    const advance = (ms: number) => {
      now += ms;
      while (timers.runDue(now));
    };
    advance(PRESENCE_CHECK_MS);
    const clientsSent = () => sent.flatMap(entries).map((entry) => entry.client);
    expect(clientsSent()).toContain(80);
    sent.length = 0;
    advance(PRESENCE_CHECK_MS);
    expect(clientsSent()).not.toContain(80);
    p.ownUpdate('peer');
    advance(PRESENCE_CHECK_MS);
    expect(clientsSent()).toContain(80);
  });
});

describe('presence sends its own changes as they are', () => {
  it('a change of its own fields and its departure reach a peer at once, not the JSON held from before (graceful stop)', () => {
    const timers = new VirtualTimers();
    const peer = new Presence(run('peer', 1), () => [], { timers, clientId: 2 });
    const self = new Presence(run('self', 1), () => [{ replica: 'peer', send: (u: Uint8Array) => peer.applyRemote(u, 'peer', 'r-self-1') }], { timers, clientId: 1 });
    // Encoded once (fullUpdate), so the JSON of its state is held.
    peer.applyRemote(self.fullUpdate()[0]!, 'peer', 'r-self-1');
    self.updateLocal({ region: 'eu' });
    expect(peer.members().find((m) => m.name === 'self')?.region).toBe('eu');
    self.updateLocal({ region: 'us' });
    expect(peer.members().find((m) => m.name === 'self')?.region).toBe('us');
    self.destroy();
    expect(peer.members().map((m) => m.name)).toEqual(['peer']);
  });
});

describe('sparse presence offers a peer only what changed since its first pass', () => {
  it('a line a–b–c carries changes, renewals and removals end to end; a peer that connects late gets everything', () => {
    const timers = new VirtualTimers();
    const links = new Map<string, string[]>([['a', ['b']], ['b', ['a', 'c']], ['c', ['b']]]);
    const nodes = new Map<string, Presence>();
    const make = (name: string, clientId: number) => {
      const peers = () => (links.get(name) ?? []).map((other) => ({ replica: `r-${other}`, send: (u: Uint8Array) => nodes.get(other)?.applyRemote(u, 'peer', `r-${name}`) }));
      nodes.set(name, new Presence({ name, replicaId: `r-${name}`, version: '1', startedAt: 1, address: `${name}:1` }, peers, { timers, clientId, sparse: () => true }));
    };
    make('a', 1);
    make('b', 2);
    make('c', 3);
    let now = 0;
    const advance = (ms: number) => {
      now += ms;
      while (timers.runDue(now));
    };
    const names = (node: string) => nodes.get(node)!.members().map((m) => m.name);
    advance(2 * PRESENCE_CHECK_MS);
    expect(names('c')).toEqual(['a', 'b', 'c']);
    expect(names('a')).toEqual(['a', 'b', 'c']);
    nodes.get('a')!.updateLocal({ region: 'eu' });
    advance(2 * PRESENCE_CHECK_MS);
    expect(nodes.get('c')!.members().find((m) => m.name === 'a')?.region).toBe('eu');
    // A far state (d's, known to a only) reaches c, is renewed there by a's relays and removed by its removal.
    nodes.get('a')!.applyRemote(update([{ client: 4, clock: 1, state: { name: 'd', replicaId: 'r-d', version: '1', startedAt: 1 } }]), 'peer', 'r-x');
    advance(2 * PRESENCE_CHECK_MS);
    expect(names('c')).toEqual(['a', 'b', 'c', 'd']);
    nodes.get('a')!.applyRemote(update([{ client: 4, clock: 2, state: null }]), 'peer', 'r-x');
    advance(2 * PRESENCE_CHECK_MS);
    expect(names('c')).toEqual(['a', 'b', 'c']);
    // A late peer of b (e) gets every member held at b's next check, then b's changes.
    links.set('b', ['a', 'c', 'e']);
    links.set('e', ['b']);
    make('e', 5);
    advance(PRESENCE_CHECK_MS);
    expect(names('e')).toEqual(['a', 'b', 'c', 'e']);
    // Renewals (clock steps) keep everyone's states alive far past the timeout.
    advance(3 * SPARSE_TIMEOUT_MS);
    expect(names('c')).toEqual(['a', 'b', 'c', 'e']);
    expect(names('a')).toEqual(['a', 'b', 'c', 'e']);
  });
});
