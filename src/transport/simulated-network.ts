/**
 * An in-memory network for deterministic tests: no sockets, no timers. The test drives it.
 *
 * Every frame sent, and every close, becomes an in-flight event on its connection; nothing moves
 * until the driver delivers it (`deliver`, `deliverNext`, `deliverAll`, `runUntilQuiet`), drops
 * it, or duplicates it. Events may be delivered in any order, so a driver can model reordering,
 * loss and duplication; delivering them oldest first models a healthy link. `autoDeliver` drains
 * the queue oldest first in microtasks, for tests that just need a working network.
 *
 * Timed links (`links`): every event is delivered by the network itself at its arrival time on the
 * clock given (a `VirtualTimers`): one-way latency per link, in order per direction (TCP), and
 * loss as TCP sees it — a lost frame is retransmitted after `retransmitMs` and holds up every
 * frame behind it on that link, since a frame lost for good would break the session's MAC chain.
 *
 * The queue is a map by event id in sending order, so delivering, dropping or taking any one
 * event is O(1); only `pending()`, `duplicate` and the faults walk it.
 *
 * Faults: `partition` cuts the connections across two groups at once (both ends see `close`) and
 * refuses dials until `heal`; `crash` is a killed process: its connections' other ends see a
 * queued close after the frames already on the wire, frames towards it are lost, its own
 * handlers are never called again, and its address refuses dials until something listens there.
 *
 * Handlers run synchronously inside the delivering call; an exception in one propagates to the
 * driver (a test should see it), unlike the WebSocket transport, which closes that connection.
 *
 * Each node's transport and connection ends are in `simulated-transport.ts`. This file stays
 * whole above 300 lines: the queue, its delivery controls and the faults act on the same events
 * and counters, and splitting them would spread one bookkeeping rule over several files.
 */
import { SimulatedConnection, SimulatedTransport, type Wire } from './simulated-transport.js';
import type { Timers } from '../timers.js';
import type { Connection, Transport } from './transport.js';

/** Guards `deliverAll` against two handlers answering each other forever. */
export const DEFAULT_MAX_DELIVERY_STEPS = 1_000_000;

export interface SimulatedNetworkOptions {
  /** Deliver every event oldest first in a microtask, with no faults. */
  readonly autoDeliver?: boolean;
  /** Frames larger than this are refused by `send`, as on the real transport. */
  readonly maxFrameBytes?: number;
  /** Links with latency and loss, delivered on a clock; the driver only moves the clock. */
  readonly links?: LinkModel;
}

export interface LinkModel {
  /** The clock deliveries are scheduled on (the nodes' own, so their timers interleave). */
  readonly timers: Pick<Timers, 'now' | 'setTimeout'>;
  /** One-way latency from `from` to `to`, ms (may vary per call: jitter). */
  readonly latencyMs: (from: string, to: string) => number;
  /** Chance in [0, 1) that a frame is lost once and retransmitted. */
  readonly lossRate?: number;
  /** Extra delay of a retransmitted frame, ms (Linux's minimum RTO is 200 ms). */
  readonly retransmitMs?: number;
  /** Float in [0, 1): seeded, so a run replays. */
  readonly random: () => number;
}

/** Frames and bytes one node sent and received. */
export interface NodeTraffic {
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  bytesReceived: number;
}

export interface InFlight {
  readonly id: number;
  readonly kind: 'frame' | 'close';
  /** Addresses of the sending and receiving nodes. */
  readonly from: string;
  readonly to: string;
  /** The link; both of its ends' `Connection.id`s start with it. */
  readonly connection: string;
  readonly size: number;
}

export interface NetworkStats {
  readonly framesSent: number;
  readonly bytesSent: number;
  readonly framesDelivered: number;
  readonly bytesDelivered: number;
  /** Dropped by the driver, cut by a partition or crash, or arriving at a closed end. */
  readonly framesLost: number;
  readonly framesDuplicated: number;
  readonly connectionsOpened: number;
  readonly dialsRefused: number;
}

interface Event {
  readonly id: number;
  readonly kind: 'frame' | 'close';
  readonly from: SimulatedConnection;
  readonly to: SimulatedConnection;
  readonly bytes: Uint8Array;
  readonly reason: string;
  /** The original counts against the sender's buffer; a duplicate does not. */
  readonly buffered: boolean;
}

export class SimulatedNetwork implements Wire {
  private readonly autoDeliver: boolean;
  private readonly maxFrameBytes: number;
  private readonly listeners = new Map<string, SimulatedTransport>();
  private readonly transports = new Set<SimulatedTransport>();
  /** Unordered address pairs that cannot reach each other, as `a\u0000b` with a < b. */
  private readonly cut = new Set<string>();
  /** In flight, in sending order (a Map iterates in insertion order). */
  private queue = new Map<number, Event>();
  private readonly links: LinkModel | undefined;
  /** Per connection end: when its last event arrives (later ones arrive no earlier: in order). */
  private readonly lastArrival = new WeakMap<SimulatedConnection, number>();
  private readonly traffic = new Map<string, NodeTraffic>();
  private nextEventId = 1;
  private nextLinkId = 1;
  private drainScheduled = false;
  private counters = {
    framesSent: 0,
    bytesSent: 0,
    framesDelivered: 0,
    bytesDelivered: 0,
    framesLost: 0,
    framesDuplicated: 0,
    connectionsOpened: 0,
    dialsRefused: 0,
  };

  constructor(options: SimulatedNetworkOptions = {}) {
    this.autoDeliver = options.autoDeliver ?? false;
    this.maxFrameBytes = options.maxFrameBytes ?? Number.POSITIVE_INFINITY;
    this.links = options.links;
  }

  /** A new transport for a node at `address` (one per node incarnation). */
  transport(address: string): Transport {
    const transport = new SimulatedTransport(address, this);
    this.transports.add(transport);
    return transport;
  }

  /** Events in flight, oldest first. */
  pending(): InFlight[] {
    return [...this.queue.values()].map(describe);
  }

  /** Delivers one event, whatever its place in the queue. Returns false for an unknown id. */
  deliver(id: number): boolean {
    const event = this.take(id);
    if (event === undefined) return false;
    this.apply(event);
    return true;
  }

  /** Delivers the oldest event, if any. */
  deliverNext(): InFlight | undefined {
    const first = this.queue.values().next().value;
    if (first === undefined) return undefined;
    const described = describe(first);
    this.deliver(first.id);
    return described;
  }

  /**
   * Delivers the events pending now, oldest first; events they cause stay queued (one "round").
   * Returns how many were delivered.
   */
  deliverAll(): number {
    const ids = [...this.queue.keys()];
    let delivered = 0;
    for (const id of ids) if (this.deliver(id)) delivered += 1;
    return delivered;
  }

  /** Delivers oldest first until nothing is in flight; throws after `maxSteps`. Returns the steps taken. */
  runUntilQuiet(maxSteps: number = DEFAULT_MAX_DELIVERY_STEPS): number {
    let steps = 0;
    while (this.queue.size > 0) {
      if (steps >= maxSteps) throw new Error(`the network is still busy after ${maxSteps} deliveries (${this.queue.size} in flight)`);
      this.deliverNext();
      steps += 1;
    }
    return steps;
  }

  /** Queues a second copy of a frame right behind the original. */
  duplicate(id: number): boolean {
    const event = this.queue.get(id);
    if (event === undefined) return false;
    const copy: Event = { ...event, id: this.nextEventId++, buffered: false };
    const queue = new Map<number, Event>();
    for (const [key, value] of this.queue) {
      queue.set(key, value);
      if (key === id) queue.set(copy.id, copy);
    }
    this.queue = queue;
    this.counters.framesDuplicated += event.kind === 'frame' ? 1 : 0;
    if (this.links !== undefined) this.schedule(copy, 0);
    this.scheduleDrain();
    return true;
  }

  /** Loses an event. Dropping a close leaves the other end half-open, as a lost FIN would. */
  drop(id: number): boolean {
    const event = this.take(id);
    if (event === undefined) return false;
    if (event.kind === 'frame') this.counters.framesLost += 1;
    return true;
  }

  /** Cuts every connection between the groups (both ends see `close` now) and refuses dials across. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) for (const b of groupB) if (a !== b) this.cut.add(pairKey(a, b));
    const reason = 'connection lost: network partition';
    for (const transport of [...this.transports]) {
      for (const connection of [...transport.connections]) {
        if (!this.isCut(connection.localAddress, connection.remoteAddress)) continue;
        this.discardLink(connection.link);
        for (const end of [connection, connection.peer]) {
          end.finish(reason);
          this.forget(end);
        }
      }
    }
  }

  /** Lifts every partition. Cut connections stay closed; nodes redial. */
  heal(): void {
    this.cut.clear();
  }

  /**
   * Kills the node at `address`: its listener goes, its connections break. The other ends see a
   * close queued after the frames already in flight from the crashed node; frames towards it are
   * lost; the crashed side's handlers are never called again.
   */
  crash(address: string): void {
    this.listeners.delete(address);
    for (const transport of this.transports) {
      if (transport.address !== address) continue;
      transport.onConnection = undefined;
      transport.isClosed = true;
      for (const connection of [...transport.connections]) {
        for (const [id, event] of this.queue) {
          if (event.to === connection) {
            this.queue.delete(id);
            if (event.kind === 'frame') this.counters.framesLost += 1;
          }
        }
        connection.silence();
        connection.queuedBytes = 0;
        this.forget(connection);
        if (!connection.peer.closed) this.push('close', connection, connection.peer, new Uint8Array(0), 'connection lost: peer crashed', false);
      }
      this.transports.delete(transport);
    }
  }

  stats(): NetworkStats {
    return { ...this.counters };
  }

  /** What the node at `address` sent (frames handed to `send`) and received (frames delivered), since the network began. */
  trafficOf(address: string): NodeTraffic {
    return { ...this.trafficEntry(address) };
  }

  // --- the Wire: used by SimulatedTransport and SimulatedConnection ------------------------------

  bind(transport: SimulatedTransport): void {
    const current = this.listeners.get(transport.address);
    if (current !== undefined && current !== transport) throw new Error(`address ${transport.address} is already in use`);
    this.listeners.set(transport.address, transport);
  }

  unbind(transport: SimulatedTransport): void {
    if (this.listeners.get(transport.address) === transport) this.listeners.delete(transport.address);
  }

  connect(dialler: SimulatedTransport, address: string): Connection {
    const refuse = (why: string): never => {
      this.counters.dialsRefused += 1;
      throw new Error(`cannot dial ${address}: ${why}`);
    };
    if (dialler.isClosed) return refuse('the transport is closed');
    const listener = this.listeners.get(address);
    if (listener === undefined || listener.onConnection === undefined) return refuse('connection refused');
    if (this.isCut(dialler.address, address)) return refuse('unreachable (network partition)');
    const link = `sim-${this.nextLinkId++}`;
    const outbound = new SimulatedConnection(`${link}:out`, link, 'outbound', dialler.address, address, dialler, this);
    const inbound = new SimulatedConnection(`${link}:in`, link, 'inbound', address, dialler.address, listener, this);
    outbound.peer = inbound;
    inbound.peer = outbound;
    dialler.connections.add(outbound);
    listener.connections.add(inbound);
    this.counters.connectionsOpened += 1;
    listener.onConnection(inbound);
    return outbound;
  }

  enqueueFrame(from: SimulatedConnection, frame: Uint8Array): void {
    if (frame.byteLength > this.maxFrameBytes) {
      throw new RangeError(`frame of ${frame.byteLength} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
    this.counters.framesSent += 1;
    this.counters.bytesSent += frame.byteLength;
    from.queuedBytes += frame.byteLength;
    const sender = this.trafficEntry(from.localAddress);
    sender.framesSent += 1;
    sender.bytesSent += frame.byteLength;
    // A copy: the sender may reuse its buffer, as it may with a socket.
    this.push('frame', from, from.peer, frame.slice(), '', true);
  }

  enqueueClose(from: SimulatedConnection, reason: string): void {
    this.forget(from);
    this.push('close', from, from.peer, new Uint8Array(0), reason, false);
  }

  // --- internals ---------------------------------------------------------------------------------

  private push(kind: 'frame' | 'close', from: SimulatedConnection, to: SimulatedConnection, bytes: Uint8Array, reason: string, buffered: boolean): void {
    const event: Event = { id: this.nextEventId++, kind, from, to, bytes, reason, buffered };
    this.queue.set(event.id, event);
    if (this.links !== undefined) {
      const { latencyMs, lossRate = 0, retransmitMs = 200, random } = this.links;
      const lost = kind === 'frame' && lossRate > 0 && random() < lossRate;
      this.schedule(event, latencyMs(from.localAddress, to.localAddress) + (lost ? retransmitMs : 0));
    }
    this.scheduleDrain();
  }

  /** Timed links: the event arrives `delayMs` from now, and never before the link's previous one. */
  private schedule(event: Event, delayMs: number): void {
    const { timers } = this.links!;
    const now = timers.now();
    const at = Math.max(now + delayMs, this.lastArrival.get(event.from) ?? 0);
    this.lastArrival.set(event.from, at);
    timers.setTimeout(() => this.deliver(event.id), at - now);
  }

  private take(id: number): Event | undefined {
    const event = this.queue.get(id);
    if (event === undefined) return undefined;
    this.queue.delete(id);
    if (event.buffered) event.from.queuedBytes -= event.bytes.byteLength;
    return event;
  }

  private trafficEntry(address: string): NodeTraffic {
    let entry = this.traffic.get(address);
    if (entry === undefined) this.traffic.set(address, (entry = { framesSent: 0, bytesSent: 0, framesReceived: 0, bytesReceived: 0 }));
    return entry;
  }

  private apply(event: Event): void {
    if (event.kind === 'close') {
      event.to.finish(event.reason);
      this.forget(event.to);
      return;
    }
    // Each delivery gets its own copy, so a duplicate never shares a buffer with the original.
    if (event.to.receive(event.bytes.slice())) {
      this.counters.framesDelivered += 1;
      this.counters.bytesDelivered += event.bytes.byteLength;
      const receiver = this.trafficEntry(event.to.localAddress);
      receiver.framesReceived += 1;
      receiver.bytesReceived += event.bytes.byteLength;
    } else {
      this.counters.framesLost += 1;
    }
  }

  /** Removes a link's in-flight events, counting lost frames. */
  private discardLink(link: string): void {
    for (const [id, event] of this.queue) {
      if (event.from.link !== link) continue;
      this.queue.delete(id);
      if (event.buffered) event.from.queuedBytes -= event.bytes.byteLength;
      if (event.kind === 'frame') this.counters.framesLost += 1;
    }
  }

  /** A closed end no longer belongs to its transport (its transport's close skips it). */
  private forget(connection: SimulatedConnection): void {
    connection.owner.connections.delete(connection);
  }

  private isCut(a: string, b: string): boolean {
    return this.cut.has(pairKey(a, b));
  }

  private scheduleDrain(): void {
    if (!this.autoDeliver || this.drainScheduled) return;
    this.drainScheduled = true;
    queueMicrotask(() => {
      this.drainScheduled = false;
      this.runUntilQuiet();
    });
  }
}

function describe(event: Event): InFlight {
  return { id: event.id, kind: event.kind, from: event.from.localAddress, to: event.to.localAddress, connection: event.from.link, size: event.bytes.byteLength };
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}
