/**
 * The contract every `Transport` passes: the WebSocket transport over real sockets and the
 * simulated network (in auto-deliver mode). Call `runTransportContract` from a test file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Connection, ConnectionHandlers, Transport } from '../../src/transport/transport.js';
import { eventually } from '../helpers/eventually.js';

export interface TransportHarness {
  /** Frames above this are refused by `send`. */
  readonly maxFrameBytes: number;
  /** A transport for a new node, and the address others dial to reach it. */
  node(): Promise<{ transport: Transport; address: string }>;
  /** An address nobody listens on. */
  unusedAddress(): Promise<string>;
  /** Frees everything the harness made (transports, servers). */
  teardown(): Promise<void>;
}

const FAST = { timeoutMs: 10_000, intervalMs: 2 };

/** Records what a connection's handlers saw. */
export class Recorder implements ConnectionHandlers {
  readonly frames: Uint8Array[] = [];
  readonly closes: string[] = [];
  messageAfterClose = false;

  message(frame: Uint8Array): void {
    if (this.closes.length > 0) this.messageAfterClose = true;
    this.frames.push(Uint8Array.from(frame));
  }

  close(reason: string): void {
    this.closes.push(reason);
  }
}

function numbered(i: number, size: number): Uint8Array {
  const frame = new Uint8Array(Math.max(size, 4));
  new DataView(frame.buffer).setUint32(0, i);
  for (let j = 4; j < frame.length; j++) frame[j] = (i + j) & 0xff;
  return frame;
}

export function runTransportContract(name: string, makeHarness: () => TransportHarness): void {
  describe(`Transport contract: ${name}`, () => {
    let harness: TransportHarness;

    beforeEach(() => {
      harness = makeHarness();
    });
    afterEach(async () => {
      await harness.teardown();
    });

    /** A listening server, and a dialled connection with both ends attached to recorders. */
    async function pair() {
      const server = await harness.node();
      const client = await harness.node();
      const inbound: Connection[] = [];
      server.transport.listen((connection) => inbound.push(connection));
      const outbound = await client.transport.dial(server.address);
      const accepted = await eventually(() => {
        expect(inbound).toHaveLength(1);
        return inbound[0]!;
      }, FAST);
      const clientSide = new Recorder();
      const serverSide = new Recorder();
      outbound.attach(clientSide);
      accepted.attach(serverSide);
      return { server, client, outbound, inbound: accepted, clientSide, serverSide, accepts: inbound };
    }

    it('dials a listening transport: one outbound and one inbound connection', async () => {
      const { server, outbound, inbound } = await pair();
      expect(outbound.direction).toBe('outbound');
      expect(inbound.direction).toBe('inbound');
      expect(outbound.remoteAddress).toBe(server.address);
      expect(typeof inbound.remoteAddress).toBe('string');
      expect(outbound.id).not.toBe(inbound.id);
      expect(outbound.closed).toBe(false);
      expect(inbound.closed).toBe(false);
    });

    it('delivers frames whole and in order, in both directions', async () => {
      const { outbound, inbound, clientSide, serverSide } = await pair();
      const sizes = [0, 1, 7, 300, 4096, 65_536, 200_000];
      const toServer = Array.from({ length: 120 }, (_, i) => numbered(i, sizes[i % sizes.length]!));
      const toClient = Array.from({ length: 120 }, (_, i) => numbered(1000 + i, sizes[(i + 3) % sizes.length]!));
      for (let i = 0; i < 120; i++) {
        outbound.send(toServer[i]!);
        inbound.send(toClient[i]!);
      }
      await eventually(() => {
        expect(serverSide.frames).toHaveLength(120);
        expect(clientSide.frames).toHaveLength(120);
      }, FAST);
      // Byte comparison: deep equality over megabytes of Uint8Array is very slow.
      const same = (a: Uint8Array[], b: Uint8Array[]) => a.map((frame, i) => Buffer.from(frame).equals(Buffer.from(b[i]!)));
      expect(same(serverSide.frames, toServer)).toEqual(toServer.map(() => true));
      expect(same(clientSide.frames, toClient)).toEqual(toClient.map(() => true));
    });

    it('copies on send: changing the buffer afterwards does not change the frame', async () => {
      const { outbound, serverSide } = await pair();
      const frame = Uint8Array.from([1, 2, 3]);
      outbound.send(frame);
      frame.fill(9);
      await eventually(() => expect(serverSide.frames).toEqual([Uint8Array.from([1, 2, 3])]), FAST);
    });

    it('holds frames that arrive before attach and delivers them on attach', async () => {
      const server = await harness.node();
      const client = await harness.node();
      const inbound: Connection[] = [];
      server.transport.listen((connection) => inbound.push(connection));
      const outbound = await client.transport.dial(server.address);
      outbound.attach(new Recorder());
      outbound.send(Uint8Array.from([1]));
      outbound.send(Uint8Array.from([2]));
      const accepted = await eventually(() => inbound[0]!, FAST);
      await eventually(() => expect(outbound.bufferedBytes()).toBe(0), FAST);
      const late = new Recorder();
      accepted.attach(late);
      await eventually(() => expect(late.frames).toEqual([Uint8Array.from([1]), Uint8Array.from([2])]), FAST);
    });

    it('reports bufferedBytes as a number that drains to 0 once the peer has everything', async () => {
      const { outbound, serverSide } = await pair();
      expect(outbound.bufferedBytes()).toBe(0);
      for (let i = 0; i < 20; i++) outbound.send(new Uint8Array(50_000));
      expect(outbound.bufferedBytes()).toBeGreaterThanOrEqual(0);
      await eventually(() => expect(serverSide.frames).toHaveLength(20), FAST);
      await eventually(() => expect(outbound.bufferedBytes()).toBe(0), FAST);
    });

    it('refuses to send a frame larger than the limit', async () => {
      const { outbound } = await pair();
      expect(() => outbound.send(new Uint8Array(harness.maxFrameBytes + 1))).toThrow(RangeError);
      expect(outbound.closed).toBe(false);
    });

    it('close(reason): the other side sees that reason once, both ends end closed', async () => {
      const { outbound, inbound, clientSide, serverSide } = await pair();
      outbound.close('duplicate: keeping the older connection');
      expect(outbound.closed).toBe(true);
      expect(clientSide.closes).toEqual(['duplicate: keeping the older connection']);
      await eventually(() => expect(serverSide.closes).toEqual(['duplicate: keeping the older connection']), FAST);
      expect(inbound.closed).toBe(true);
      outbound.close('again');
      inbound.close('and again');
      expect(clientSide.closes).toHaveLength(1);
      expect(serverSide.closes).toHaveLength(1);
    });

    it('close from the inbound side reaches the dialler', async () => {
      const { outbound, inbound, clientSide } = await pair();
      inbound.close('cluster: wrong cluster');
      await eventually(() => expect(clientSide.closes).toEqual(['cluster: wrong cluster']), FAST);
      expect(outbound.closed).toBe(true);
    });

    it('a long close reason arrives as a non-empty prefix of it', async () => {
      const { outbound, serverSide } = await pair();
      const reason = `bad_frame: ${'é'.repeat(200)}`;
      outbound.close(reason);
      const seen = await eventually(() => {
        expect(serverSide.closes).toHaveLength(1);
        return serverSide.closes[0]!;
      }, FAST);
      expect(seen.length).toBeGreaterThan(10);
      expect(reason.startsWith(seen)).toBe(true);
    });

    it('frames sent before a close arrive before it; nothing arrives after it; sends after close are dropped', async () => {
      const { outbound, inbound, clientSide, serverSide } = await pair();
      for (let i = 0; i < 50; i++) inbound.send(numbered(i, 10));
      inbound.close('done');
      expect(() => inbound.send(Uint8Array.from([1]))).not.toThrow();
      await eventually(() => expect(clientSide.closes).toEqual(['done']), FAST);
      expect(clientSide.frames).toHaveLength(50);
      expect(clientSide.messageAfterClose).toBe(false);
      expect(() => outbound.send(Uint8Array.from([1]))).not.toThrow();
      expect(serverSide.frames).toHaveLength(0);
      expect(serverSide.messageAfterClose).toBe(false);
      expect(() => outbound.attach(new Recorder())).toThrow();
    });

    it('a handler that closes on the first frame sees no further frames', async () => {
      const server = await harness.node();
      const client = await harness.node();
      server.transport.listen((connection) => {
        connection.attach(new Recorder());
        for (let i = 0; i < 30; i++) connection.send(numbered(i, 10));
      });
      const outbound = await client.transport.dial(server.address);
      const seen: number[] = [];
      const closes: string[] = [];
      outbound.attach({
        message(frame) {
          seen.push(frame.length);
          outbound.close('enough');
        },
        close(reason) {
          closes.push(reason);
        },
      });
      await eventually(() => expect(closes).toEqual(['enough']), FAST);
      expect(seen).toHaveLength(1);
    });

    it('rejects a dial to an address nobody listens on', async () => {
      const client = await harness.node();
      await expect(client.transport.dial(await harness.unusedAddress())).rejects.toThrow();
    });

    it('accepts many connections, and transport.close() closes every one of them', async () => {
      const server = await harness.node();
      const inbound: Array<{ connection: Connection; recorder: Recorder }> = [];
      server.transport.listen((connection) => {
        const recorder = new Recorder();
        connection.attach(recorder);
        inbound.push({ connection, recorder });
      });
      const clients = await Promise.all([harness.node(), harness.node(), harness.node()]);
      const outbound = await Promise.all(clients.map((c) => c.transport.dial(server.address)));
      const recorders = outbound.map((connection) => {
        const recorder = new Recorder();
        connection.attach(recorder);
        return recorder;
      });
      await eventually(() => expect(inbound).toHaveLength(3), FAST);

      await server.transport.close();
      for (const { connection, recorder } of inbound) {
        expect(connection.closed).toBe(true);
        expect(recorder.closes).toHaveLength(1);
      }
      await eventually(() => {
        for (const recorder of recorders) expect(recorder.closes).toHaveLength(1);
      }, FAST);
      for (const connection of outbound) expect(connection.closed).toBe(true);
      await expect(clients[0]!.transport.dial(server.address)).rejects.toThrow();
      await server.transport.close();
    });

    it('closing the dialling transport closes its outbound connections too', async () => {
      const { client, outbound, clientSide, serverSide } = await pair();
      await client.transport.close();
      expect(outbound.closed).toBe(true);
      expect(clientSide.closes).toHaveLength(1);
      await eventually(() => expect(serverSide.closes).toHaveLength(1), FAST);
      await expect(client.transport.dial('127.0.0.1:1')).rejects.toThrow();
    });
  });
}
