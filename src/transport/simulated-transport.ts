/**
 * One node's side of the simulated network (`simulated-network.ts`): its transport and its
 * connection ends. They hold no queue of their own: every send and close goes to the `Wire` (the
 * network), which delivers it when the test driver says so. Frames held until attach: `inbox.ts`.
 */
import { Inbox } from './inbox.js';
import type { Connection, ConnectionHandlers, Transport } from './transport.js';

/** What the transports and connections ask of the network. */
export interface Wire {
  bind(transport: SimulatedTransport): void;
  unbind(transport: SimulatedTransport): void;
  connect(dialler: SimulatedTransport, address: string): Connection;
  enqueueFrame(from: SimulatedConnection, frame: Uint8Array): void;
  enqueueClose(from: SimulatedConnection, reason: string): void;
}

export class SimulatedConnection implements Connection {
  peer!: SimulatedConnection;
  private readonly inbox = new Inbox();
  private isClosed = false;
  queuedBytes = 0;

  constructor(
    readonly id: string,
    readonly link: string,
    readonly direction: 'inbound' | 'outbound',
    readonly localAddress: string,
    readonly remoteAddress: string,
    readonly owner: SimulatedTransport,
    private readonly wire: Wire,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  attach(handlers: ConnectionHandlers): void {
    this.inbox.attach(handlers);
  }

  send(frame: Uint8Array): void {
    if (this.isClosed) return;
    this.wire.enqueueFrame(this, frame);
  }

  bufferedBytes(): number {
    return this.queuedBytes;
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.finish(reason);
    this.wire.enqueueClose(this, reason);
  }

  /** Returns false when the frame was lost because this end is closed. */
  receive(frame: Uint8Array): boolean {
    if (this.isClosed) return false;
    this.inbox.receive(frame);
    return true;
  }

  finish(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.inbox.close(reason);
  }

  /** A crashed process: it is gone, so nothing is reported to it any more. */
  silence(): void {
    this.isClosed = true;
    this.inbox.silence();
  }
}

export class SimulatedTransport implements Transport {
  readonly connections = new Set<SimulatedConnection>();
  onConnection: ((connection: Connection) => void) | undefined;
  isClosed = false;

  constructor(
    readonly address: string,
    private readonly wire: Wire,
  ) {}

  listen(onConnection: (connection: Connection) => void): void {
    if (this.isClosed) throw new Error('the transport is closed');
    this.wire.bind(this);
    this.onConnection = onConnection;
  }

  dial(address: string): Promise<Connection> {
    // A microtask, never a timer: the caller sees the same asynchrony as a real dial.
    return Promise.resolve().then(() => this.wire.connect(this, address));
  }

  close(): Promise<void> {
    if (!this.isClosed) {
      this.isClosed = true;
      this.wire.unbind(this);
      this.onConnection = undefined;
      for (const connection of [...this.connections]) connection.close('shutting_down: transport closed');
    }
    return Promise.resolve();
  }
}
