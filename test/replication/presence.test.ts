import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import { Presence } from '../../src/replication/presence.js';
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
