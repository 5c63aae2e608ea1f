import { afterEach, describe, expect, it, vi } from 'vitest';
import { SimulatedNetwork } from '../../src/transport/simulated-network.js';
import { VirtualTimers } from '../../src/virtual-timers.js';
import type { Connection, Transport } from '../../src/transport/transport.js';
import { Recorder } from './transport-contract.js';

const bytes = (...values: number[]) => Uint8Array.from(values);

interface Node {
  transport: Transport;
  inbound: Array<{ connection: Connection; recorder: Recorder }>;
}

function listening(network: SimulatedNetwork, address: string): Node {
  const transport = network.transport(address);
  const inbound: Node['inbound'] = [];
  transport.listen((connection) => {
    const recorder = new Recorder();
    connection.attach(recorder);
    inbound.push({ connection, recorder });
  });
  return { transport, inbound };
}

async function connect(network: SimulatedNetwork, from: string, to: Node, toAddress: string) {
  const dialler = network.transport(from);
  const outbound = await dialler.dial(toAddress);
  const recorder = new Recorder();
  outbound.attach(recorder);
  const accepted = to.inbound[to.inbound.length - 1]!;
  return { dialler, outbound, recorder, inbound: accepted.connection, inboundRecorder: accepted.recorder };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SimulatedNetwork', () => {
  it('moves nothing until the driver delivers, and lists what is in flight', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.outbound.send(bytes(1, 2, 3));
    link.inbound.send(bytes(9));
    expect(link.inboundRecorder.frames).toHaveLength(0);
    const pending = network.pending();
    expect(pending).toEqual([
      { id: expect.any(Number), kind: 'frame', from: 'a:1', to: 'b:1', connection: expect.any(String), size: 3 },
      { id: expect.any(Number), kind: 'frame', from: 'b:1', to: 'a:1', connection: pending[0]!.connection, size: 1 },
    ]);
    expect(link.outbound.id.startsWith(pending[0]!.connection)).toBe(true);
    expect(link.outbound.bufferedBytes()).toBe(3);
    expect(network.deliverNext()?.size).toBe(3);
    expect(link.inboundRecorder.frames).toEqual([bytes(1, 2, 3)]);
    expect(link.outbound.bufferedBytes()).toBe(0);
    expect(link.inbound.bufferedBytes()).toBe(1);
    expect(network.runUntilQuiet()).toBe(1);
    expect(link.recorder.frames).toEqual([bytes(9)]);
    expect(network.stats()).toMatchObject({ framesSent: 2, bytesSent: 4, framesDelivered: 2, bytesDelivered: 4, connectionsOpened: 1 });
  });

  it('delivers out of order when told to', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    for (let i = 1; i <= 3; i++) link.outbound.send(bytes(i));
    const [first, second, third] = network.pending();
    network.deliver(third!.id);
    network.deliver(first!.id);
    network.deliver(second!.id);
    expect(link.inboundRecorder.frames).toEqual([bytes(3), bytes(1), bytes(2)]);
    expect(network.deliver(first!.id)).toBe(false);
  });

  it('duplicates and drops frames', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.outbound.send(bytes(1));
    link.outbound.send(bytes(2));
    const [one, two] = network.pending();
    expect(network.duplicate(one!.id)).toBe(true);
    expect(network.drop(two!.id)).toBe(true);
    expect(link.outbound.bufferedBytes()).toBe(1);
    network.runUntilQuiet();
    expect(link.inboundRecorder.frames).toEqual([bytes(1), bytes(1)]);
    expect(link.outbound.bufferedBytes()).toBe(0);
    expect(network.stats()).toMatchObject({ framesDelivered: 2, framesLost: 1, framesDuplicated: 1 });
  });

  it('gives each delivery its own copy of the bytes', async () => {
    const network = new SimulatedNetwork();
    const b = network.transport('b:1');
    const seen: Uint8Array[] = [];
    b.listen((connection) =>
      connection.attach({
        message(frame) {
          seen.push(Uint8Array.from(frame));
          frame.fill(0); // a receiver scribbling on its buffer must not change the duplicate
        },
        close() {},
      }),
    );
    const out = await network.transport('a:1').dial('b:1');
    const sent = bytes(5, 6);
    out.send(sent);
    sent.fill(7); // nor may the sender, after send
    network.duplicate(network.pending()[0]!.id);
    network.runUntilQuiet();
    expect(seen).toEqual([bytes(5, 6), bytes(5, 6)]);
  });

  it('queues a close behind the frames sent before it', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.outbound.send(bytes(1));
    link.outbound.close('bye');
    expect(link.recorder.closes).toEqual(['bye']);
    expect(network.pending().map((e) => e.kind)).toEqual(['frame', 'close']);
    expect(link.inbound.closed).toBe(false);
    network.runUntilQuiet();
    expect(link.inboundRecorder.frames).toEqual([bytes(1)]);
    expect(link.inboundRecorder.closes).toEqual(['bye']);
    expect(link.inbound.closed).toBe(true);
  });

  it('a close delivered before an earlier frame makes that frame lost', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.outbound.send(bytes(1));
    link.outbound.close('bye');
    const [frame, close] = network.pending();
    network.deliver(close!.id);
    network.deliver(frame!.id);
    expect(link.inboundRecorder.frames).toHaveLength(0);
    expect(link.inboundRecorder.closes).toEqual(['bye']);
    expect(network.stats().framesLost).toBe(1);
  });

  it('dropping a close leaves the other end half-open', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.outbound.close('bye');
    network.drop(network.pending()[0]!.id);
    expect(link.inbound.closed).toBe(false);
    link.inbound.send(bytes(1));
    network.runUntilQuiet();
    expect(link.recorder.frames).toHaveLength(0);
    expect(network.stats().framesLost).toBe(1);
  });

  it('partition cuts connections across at once, refuses dials across, and heal lifts it', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const c = listening(network, 'c:1');
    const ab = await connect(network, 'a:1', b, 'b:1');
    const cb = await connect(network, 'c:1', b, 'b:1');
    ab.outbound.send(bytes(1));
    network.partition(['a:1'], ['b:1', 'c:1']);
    expect(ab.recorder.closes).toEqual(['connection lost: network partition']);
    expect(ab.inboundRecorder.closes).toEqual(['connection lost: network partition']);
    expect(network.pending()).toHaveLength(0);
    expect(cb.outbound.closed).toBe(false);
    await expect(ab.dialler.dial('b:1')).rejects.toThrow(/partition/);
    await expect(ab.dialler.dial('c:1')).rejects.toThrow(/partition/);
    expect((await cb.dialler.dial('b:1')).closed).toBe(false);
    network.heal();
    expect((await ab.dialler.dial('b:1')).closed).toBe(false);
    expect(network.stats().dialsRefused).toBe(2);
    expect(c.inbound).toHaveLength(0);
  });

  it('crash: in-flight frames from the node still arrive, then a close; the crashed side hears nothing', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    link.inbound.send(bytes(1)); // towards a (the survivor)
    link.outbound.send(bytes(2)); // towards b (crashing)
    network.crash('b:1');
    expect(link.inbound.closed).toBe(true);
    expect(link.inboundRecorder.closes).toHaveLength(0);
    expect(network.pending().map((e) => [e.kind, e.to])).toEqual([
      ['frame', 'a:1'],
      ['close', 'a:1'],
    ]);
    network.runUntilQuiet();
    expect(link.recorder.frames).toEqual([bytes(1)]);
    expect(link.recorder.closes).toEqual(['connection lost: peer crashed']);
    expect(link.inboundRecorder.frames).toHaveLength(0);
    await expect(link.dialler.dial('b:1')).rejects.toThrow(/refused/);
    await expect(b.transport.dial('a:1')).rejects.toThrow(/closed/);

    // A new incarnation listens at the same address.
    const reborn = listening(network, 'b:1');
    const again = await link.dialler.dial('b:1');
    again.send(bytes(3));
    network.runUntilQuiet();
    expect(reborn.inbound[0]!.recorder.frames).toEqual([bytes(3)]);
  });

  it('refuses a second listener on one address, and dials to nobody', async () => {
    const network = new SimulatedNetwork();
    listening(network, 'b:1');
    expect(() => network.transport('b:1').listen(() => {})).toThrow(/in use/);
    await expect(network.transport('a:1').dial('x:1')).rejects.toThrow(/refused/);
  });

  it('settles dials without timers', async () => {
    vi.useFakeTimers();
    const network = new SimulatedNetwork();
    listening(network, 'b:1');
    const dialler = network.transport('a:1');
    await expect(dialler.dial('b:1')).resolves.toBeDefined();
    await expect(dialler.dial('nobody:1')).rejects.toThrow();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('deliverAll delivers one round; runUntilQuiet stops a livelock after maxSteps', async () => {
    const network = new SimulatedNetwork();
    const b = network.transport('b:1');
    b.listen((connection) => connection.attach({ message: (frame) => connection.send(frame), close: () => {} }));
    const a = network.transport('a:1');
    const out = await a.dial('b:1');
    out.attach({ message: (frame) => out.send(frame), close: () => {} });
    out.send(bytes(1));
    expect(network.deliverAll()).toBe(1);
    expect(network.pending()).toHaveLength(1);
    expect(() => network.runUntilQuiet(50)).toThrow(/still busy after 50/);
  });

  it('is deterministic: the same script gives the same events', async () => {
    async function script() {
      const network = new SimulatedNetwork();
      const b = listening(network, 'b:1');
      const link = await connect(network, 'a:1', b, 'b:1');
      for (let i = 0; i < 5; i++) (i % 2 === 0 ? link.outbound : link.inbound).send(new Uint8Array(i + 1));
      network.duplicate(network.pending()[2]!.id);
      return { pending: network.pending(), ids: [link.outbound.id, link.inbound.id] };
    }
    expect(await script()).toEqual(await script());
  });

  it('transport.close() closes its connections with a queued close to each peer', async () => {
    const network = new SimulatedNetwork();
    const b = listening(network, 'b:1');
    const link = await connect(network, 'a:1', b, 'b:1');
    await b.transport.close();
    expect(link.inbound.closed).toBe(true);
    expect(link.inboundRecorder.closes).toEqual(['shutting_down: transport closed']);
    expect(link.outbound.closed).toBe(false);
    network.runUntilQuiet();
    expect(link.recorder.closes).toEqual(['shutting_down: transport closed']);
    await expect(link.dialler.dial('b:1')).rejects.toThrow(/refused/);
  });

  describe('timed links', () => {
    function timed(lossRate: number, random: () => number) {
      const timers = new VirtualTimers();
      const network = new SimulatedNetwork({ links: { timers, latencyMs: () => 50, lossRate, retransmitMs: 200, random } });
      return { timers, network };
    }

    it('delivers each frame after the link latency, in order, and counts each node\'s traffic', async () => {
      const { timers, network } = timed(0, () => 0.5);
      const b = listening(network, 'b:1');
      const { outbound, inboundRecorder } = await connect(network, 'a:1', b, 'b:1');
      outbound.send(bytes(1));
      timers.runDue(10);
      outbound.send(bytes(2, 2));
      expect(timers.runDue(49)).toBe(false);
      expect(inboundRecorder.frames).toEqual([]);
      expect(timers.runDue(1_000)).toBe(true);
      expect(timers.now()).toBe(50);
      expect(inboundRecorder.frames).toEqual([bytes(1)]);
      expect(timers.runDue(1_000)).toBe(true);
      expect(timers.now()).toBe(60);
      expect(inboundRecorder.frames).toEqual([bytes(1), bytes(2, 2)]);
      expect(network.trafficOf('a:1')).toEqual({ framesSent: 2, bytesSent: 3, framesReceived: 0, bytesReceived: 0 });
      expect(network.trafficOf('b:1')).toEqual({ framesSent: 0, bytesSent: 0, framesReceived: 2, bytesReceived: 3 });
    });

    it('models loss as a retransmission that holds up the frames behind it, never as a gap', async () => {
      const draws = [0.001, 0.9, 0.9];
      const { timers, network } = timed(0.01, () => draws.shift() ?? 0.9);
      const b = listening(network, 'b:1');
      const { outbound, inboundRecorder } = await connect(network, 'a:1', b, 'b:1');
      outbound.send(bytes(1));
      outbound.send(bytes(2));
      expect(timers.runDue(249)).toBe(false);
      expect(inboundRecorder.frames).toEqual([]);
      while (timers.runDue(1_000));
      expect(inboundRecorder.frames).toEqual([bytes(1), bytes(2)]);
      expect(network.stats().framesLost).toBe(0);
    });
  });
});
