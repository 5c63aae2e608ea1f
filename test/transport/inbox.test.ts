import { describe, expect, it } from 'vitest';
import { Inbox } from '../../src/transport/inbox.js';
import type { ConnectionHandlers } from '../../src/transport/transport.js';

const bytes = (n: number) => new Uint8Array([n]);

function recorder(onMessage: (frame: Uint8Array) => void = () => {}): ConnectionHandlers & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    message: (frame) => {
      seen.push(`frame ${frame[0]}`);
      onMessage(frame);
    },
    close: (reason) => void seen.push(`close ${reason}`),
  };
}

describe('Inbox', () => {
  it('holds frames and a close until attach, then delivers them in order, close last', () => {
    const inbox = new Inbox();
    inbox.receive(bytes(1));
    inbox.receive(bytes(2));
    inbox.close('bye');
    inbox.receive(bytes(3));
    const handlers = recorder();
    inbox.attach(handlers);
    expect(handlers.seen).toEqual(['frame 1', 'frame 2', 'close bye']);
  });

  it('passes frames straight through after attach and reports the close once', () => {
    const inbox = new Inbox();
    const handlers = recorder();
    inbox.attach(handlers);
    inbox.receive(bytes(1));
    inbox.close('first');
    inbox.close('second');
    inbox.receive(bytes(2));
    expect(handlers.seen).toEqual(['frame 1', 'close first']);
  });

  it('stops delivering held frames when a handler closes the connection', () => {
    const inbox = new Inbox();
    for (const n of [1, 2, 3]) inbox.receive(bytes(n));
    const handlers = recorder((frame) => {
      if (frame[0] === 1) inbox.close('handler closed');
    });
    inbox.attach(handlers);
    expect(handlers.seen).toEqual(['frame 1', 'close handler closed']);
  });

  it('calls nothing once silenced', () => {
    const inbox = new Inbox();
    inbox.receive(bytes(1));
    inbox.silence();
    inbox.close('gone');
    const handlers = recorder();
    inbox.attach(handlers);
    inbox.receive(bytes(2));
    expect(handlers.seen).toEqual([]);
  });

  it('refuses a second attach', () => {
    const inbox = new Inbox();
    inbox.attach(recorder());
    expect(() => inbox.attach(recorder())).toThrow(/already attached/);
  });
});
