/**
 * The receiving half every `Connection` shares (WebSocket and simulated): frames that arrive
 * before `attach` are held and delivered on attach, in order, then the close if one came; after
 * attach they go straight to the handlers. The close is reported once, and nothing after it.
 *
 * Order on attach: frames that arrived before a remote close are still delivered, then the
 * close; a handler that closes the connection itself stops the rest. The held frames are bounded
 * by what arrives between the link opening and its owner attaching, which the owner does at once.
 */
import type { ConnectionHandlers } from './transport.js';

/** How the handlers are called: the WebSocket transport guards them, the simulation does not. */
export interface HandlerCalls {
  message(handlers: ConnectionHandlers, frame: Uint8Array): void;
  close(handlers: ConnectionHandlers, reason: string): void;
}

const DIRECT: HandlerCalls = {
  message: (handlers, frame) => handlers.message(frame),
  close: (handlers, reason) => handlers.close(reason),
};

export class Inbox {
  private handlers: ConnectionHandlers | undefined;
  private held: Uint8Array[] = [];
  private closeReason: string | undefined;
  /** The close was reported, or the inbox was silenced: the handlers are never called again. */
  private done = false;

  constructor(private readonly calls: HandlerCalls = DIRECT) {}

  attach(handlers: ConnectionHandlers): void {
    if (this.handlers !== undefined) throw new Error('connection handlers are already attached');
    this.handlers = handlers;
    const held = this.held;
    this.held = [];
    const closedBefore = this.closeReason !== undefined;
    for (const frame of held) {
      if (this.done || (this.closeReason !== undefined && !closedBefore)) break;
      this.calls.message(handlers, frame);
    }
    this.reportClose();
  }

  /** A frame from the link: held until attach, then delivered. Ignored once closed. */
  receive(frame: Uint8Array): void {
    if (this.closeReason !== undefined || this.done) return;
    if (this.handlers === undefined) this.held.push(frame);
    else this.calls.message(this.handlers, frame);
  }

  /** The connection closed, by either side: reported now, or after the held frames on attach. */
  close(reason: string): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.reportClose();
  }

  /** Drops what is held and never calls the handlers again (a crashed process). */
  silence(): void {
    this.done = true;
    this.held = [];
  }

  private reportClose(): void {
    if (this.closeReason === undefined || this.done || this.handlers === undefined) return;
    this.done = true;
    this.held = [];
    this.calls.close(this.handlers, this.closeReason);
  }
}
