/**
 * The test DNS server's SRV answers, byte by byte. RFC 2782 forbids name compression in the SRV
 * target; c-ares 1.34.8 (Node 24) rejects an answer that uses it with EBADRESP, older c-ares
 * (Node 20) reads it, so the DNS discovery tests alone would only catch a regression on Node 24.
 */
import dgram from 'node:dgram';
import { afterEach, expect, it } from 'vitest';
import { srv, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';

const TYPE_SRV = 33;
const CLASS_IN = 1;
const HEADER_BYTES = 12;

let dns: TestDnsServer | undefined;
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});

function encodeName(name: string): Buffer {
  const labels = name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')]));
  return Buffer.concat([...labels, Buffer.from([0])]);
}

function srvQuery(id: number, name: string): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE_SRV, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

async function ask(server: TestDnsServer, query: Buffer): Promise<Buffer> {
  const socket = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      socket.once('message', resolve);
      socket.once('error', reject);
      socket.send(query, server.port, server.address);
    });
  } finally {
    socket.close();
  }
}

/** Skips a name that may be compressed (the owner name); returns the offset after it. */
function skipName(message: Buffer, offset: number): number {
  for (;;) {
    const length = message.readUInt8(offset);
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2;
    offset += 1 + length;
  }
}

it('writes SRV targets as literal labels, never as compression pointers (RFC 2782)', async () => {
  // Both targets end in the question's name, so a compressing encoder would point at it.
  const targets = ['node-1.app.internal', 'node-2.app.internal'];
  dns = await startDnsServer({ records: { 'app.internal': targets.map((target, i) => srv(target, 9001 + i)) } });
  const reply = await ask(dns, srvQuery(0x1234, 'app.internal'));

  expect(reply.readUInt16BE(0)).toBe(0x1234);
  expect(reply.readUInt16BE(6)).toBe(targets.length); // ANCOUNT
  let offset = skipName(reply, HEADER_BYTES) + 4;
  for (const [i, target] of targets.entries()) {
    offset = skipName(reply, offset);
    expect(reply.readUInt16BE(offset)).toBe(TYPE_SRV);
    const rdlength = reply.readUInt16BE(offset + 8);
    const rdata = reply.subarray(offset + 10, offset + 10 + rdlength);
    expect(rdata.readUInt16BE(4)).toBe(9001 + i);
    expect(rdata.subarray(6)).toEqual(encodeName(target));
    offset += 10 + rdlength;
  }
  expect(offset).toBe(reply.length);
});
