/** Frames built once for every follower: ws itself, as a client would, reads them back whatever the length. */
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { textFrame } from '../../src/http/ws-frame.js';

// ws's own frame parser (what its clients read with); its types do not export it.
const Receiver = (createRequire(import.meta.url)('ws') as { Receiver: new (options: { isServer: boolean }) => Writable }).Receiver;

/** What a WebSocket client's receiver makes of `bytes`: the text messages, in order. */
function received(bytes: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const messages: string[] = [];
    const receiver = new Receiver({ isServer: false });
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) reject(new Error('a binary message'));
      messages.push(data.toString('utf8'));
    });
    receiver.on('error', reject);
    receiver.write(bytes, () => resolve(messages));
  });
}

describe('textFrame', () => {
  it('is read back by a WebSocket receiver at every length field (7, 16 and 64 bits), UTF-8 intact', async () => {
    const texts = ['', 'x', 'é'.repeat(62) + 'x', 'a'.repeat(126), 'ü'.repeat(40_000), 'z'.repeat(65_535), 'b'.repeat(65_536), '{"page":"blog/héllo"}'];
    const frames = texts.map((text) => textFrame(text));
    expect(frames.map((frame, i) => frame.length - Buffer.byteLength(texts[i] as string))).toEqual([2, 2, 2, 4, 10, 4, 10, 2]);
    // All of them back to back, as a socket carries a fan-out's joined run.
    expect(await received(Buffer.concat(frames))).toEqual(texts);
  });

  it('is final, unmasked and a text frame', () => {
    const frame = textFrame('{}');
    expect(frame[0]).toBe(0x81);
    expect((frame[1] as number) & 0x80).toBe(0);
  });
});
