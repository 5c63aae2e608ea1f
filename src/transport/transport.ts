/**
 * Transport: framed, ordered, reliable-until-closed byte streams between nodes. Implemented by
 * `WebSocketTransport` (ws, at `/cluster` on the node's HTTP server) and `SimulatedNetwork`
 * (in memory, for property tests); both pass `test/transport/transport-contract.ts`.
 * Frames are opaque here: the protocol layer encodes and validates them.
 */
export interface ConnectionHandlers {
  /** One whole frame, in the order sent. Never called after `close`. */
  message(frame: Uint8Array): void;
  /** Called once, when either side closed or the link broke. */
  close(reason: string): void;
}

export interface Connection {
  /** Unique per connection within a process. */
  readonly id: string;
  readonly direction: 'inbound' | 'outbound';
  /** `host:port` dialled (outbound) or the remote socket address (inbound). */
  readonly remoteAddress: string;
  /** Frames received before `attach` are held and delivered on attach. */
  attach(handlers: ConnectionHandlers): void;
  /** Queues a frame. Frames sent after close are dropped. */
  send(frame: Uint8Array): void;
  /** Bytes queued and not yet handed to the network: the send-buffer bound reads this. */
  bufferedBytes(): number;
  /**
   * Stops / restarts reading frames (backpressure: the receiver is behind on merging). Frames
   * already read are still delivered. Optional: a transport without a socket may ignore it.
   */
  pause?(): void;
  resume?(): void;
  /** Closes with a reason the other side sees (`close(reason)` there). Idempotent. */
  close(reason: string): void;
  readonly closed: boolean;
}

export interface Transport {
  /** Starts accepting; every inbound connection goes to `onConnection`. */
  listen(onConnection: (connection: Connection) => void): void;
  /** Opens a connection to `host:port`; rejects when the peer cannot be reached. */
  dial(address: string): Promise<Connection>;
  /** Stops accepting and closes every connection. Idempotent. */
  close(): Promise<void>;
}
