/**
 * A real DNS server on loopback for tests, built on dns2: UDP and TCP on the same port (c-ares
 * retries over TCP when a UDP answer is truncated, on the port it was given). Records can be
 * changed while it runs; unknown names answer NXDOMAIN; a known name with no record of the asked
 * type answers NOERROR with no answers (NODATA), as a real authoritative server does.
 *
 *   const dns = await startDnsServer({ records: { 'app.internal': [a('127.0.0.2')] } });
 *   // DISCOVERY_DNS_SERVER=dns.server  (e.g. "127.0.0.1:53123")
 *   dns.set('app.internal', [a('127.0.0.2'), a('127.0.0.3')]);
 *   await dns.stop();
 */
import type { AddressInfo, Socket } from 'node:net';
import dns2, { type Packet, type Resource } from 'dns2';

const { Packet: PacketClass, UDPServer, TCPServer } = dns2;

export type DnsRecord =
  | { readonly type: 'A'; readonly address: string; readonly ttl?: number }
  | { readonly type: 'AAAA'; readonly address: string; readonly ttl?: number }
  | {
      readonly type: 'SRV';
      readonly target: string;
      readonly port: number;
      readonly priority?: number;
      readonly weight?: number;
      readonly ttl?: number;
    };

/** `answer`: normal; `servfail`: every query gets SERVFAIL; `drop`: queries are read and never answered. */
export type DnsServerMode = 'answer' | 'servfail' | 'drop';

export interface DnsQuery {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  /** The loopback address it listens on, e.g. `127.0.0.1`. */
  readonly address: string;
  readonly port: number;
  /** `ip:port` (or `[v6]:port`): the value for DISCOVERY_DNS_SERVER / `Resolver#setServers`. */
  readonly server: string;
  /** Whether TCP listens on the same port too (it always does unless the port was taken). */
  readonly tcp: boolean;
  /** Replaces the records of `name`. An empty list keeps the name known with no records (NODATA). */
  set(name: string, records: readonly DnsRecord[]): void;
  /** Forgets `name`: it answers NXDOMAIN afterwards. */
  delete(name: string): void;
  setMode(mode: DnsServerMode): void;
  /** Every query received, in order. */
  readonly queries: readonly DnsQuery[];
  /** Closes both sockets. Idempotent. */
  stop(): Promise<void>;
}

export interface StartDnsServerOptions {
  readonly records?: Readonly<Record<string, readonly DnsRecord[]>>;
  /** Loopback address to bind; `127.0.0.1` by default (`::1` works too). */
  readonly host?: string;
  /** 0 (default) picks a free port; a fixed one lets a test restart a server where it was. */
  readonly port?: number;
  readonly mode?: DnsServerMode;
}

/** Default TTL: 0, so no resolver caches an answer and a change is seen by the very next query. */
const DEFAULT_TTL_S = 0;
/** Tries to find a port free for both UDP and TCP before settling for UDP only. */
const PORT_ATTEMPTS = 10;

export const a = (address: string, ttl?: number): DnsRecord => ({ type: 'A', address, ...(ttl === undefined ? {} : { ttl }) });
export const aaaa = (address: string, ttl?: number): DnsRecord => ({ type: 'AAAA', address, ...(ttl === undefined ? {} : { ttl }) });
export const srv = (target: string, port: number, extra: { priority?: number; weight?: number; ttl?: number } = {}): DnsRecord => ({
  type: 'SRV',
  target,
  port,
  ...extra,
});

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

// dns2's typings omit Packet.RCODE; the values are fixed by RFC 1035 §4.1.1.
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

const TYPE_NAMES = new Map<number, string>(Object.entries(PacketClass.TYPE).map(([name, code]) => [code as number, name]));

// RFC 2782 says of the SRV target: "name compression is not to be used for this field". dns2 3
// compresses it anyway (`06 node-1 c0 0c`); c-ares 1.34.6 (Node 20) reads that, c-ares 1.34.8
// (Node 24) rejects the whole answer with EBADRESP. So SRV RDATA is encoded here: priority,
// weight, port, then the target as literal labels (Name.encode without the message's writer has
// no table of earlier names, so it never emits a pointer). dns2's writer back-fills RDLENGTH.
interface RdataCodec {
  encode(record: Resource, writer: { write(value: number, bits: number): void }): void;
}
(PacketClass.Resource as unknown as { SRV: RdataCodec }).SRV.encode = (record, writer) => {
  writer.write(record.priority ?? 0, 16);
  writer.write(record.weight ?? 0, 16);
  writer.write(record.port ?? 0, 16);
  for (const byte of PacketClass.Name.encode(record.target ?? '')) writer.write(byte, 8);
};

export async function startDnsServer(options: StartDnsServerOptions = {}): Promise<TestDnsServer> {
  const host = options.host ?? '127.0.0.1';
  const zone = new Map<string, readonly DnsRecord[]>();
  for (const [name, records] of Object.entries(options.records ?? {})) zone.set(normaliseName(name), records);
  let mode: DnsServerMode = options.mode ?? 'answer';
  const queries: DnsQuery[] = [];

  function respond(request: Packet, send: (response: Packet) => Promise<Buffer>, transport: 'udp' | 'tcp'): void {
    const response = PacketClass.createResponseFromRequest(request);
    response.header.aa = 1;
    response.header.ra = 1;
    for (const question of request.questions) {
      queries.push({ name: question.name, type: TYPE_NAMES.get(question.type) ?? String(question.type), transport });
    }
    if (mode === 'drop') return;
    if (mode === 'servfail') {
      response.header.rcode = RCODE_SERVFAIL;
    } else {
      for (const question of request.questions) {
        const records = zone.get(normaliseName(question.name));
        if (records === undefined) {
          response.header.rcode = RCODE_NXDOMAIN;
          continue;
        }
        for (const record of records) {
          const code = PacketClass.TYPE[record.type];
          if (question.type !== code && question.type !== PacketClass.TYPE.ANY) continue;
          const { type: _type, ttl, ...data } = record;
          // dns2 encodes plain objects: the rdata fields sit beside name/type/class/ttl.
          response.answers.push({
            name: question.name,
            type: code,
            class: PacketClass.CLASS.IN,
            ttl: ttl ?? DEFAULT_TTL_S,
            priority: 0,
            weight: 0,
            ...data,
          } as Resource);
        }
      }
    }
    // A client that went away is not the server's problem.
    send(response).catch(() => undefined);
  }

  const { udp, tcp, port, tcpSockets } = await bindBoth(host, options.port ?? 0, respond);
  let stopped: Promise<void> | undefined;

  return {
    address: host,
    port,
    server: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    tcp: tcp !== undefined,
    set(name, records) {
      zone.set(normaliseName(name), [...records]);
    },
    delete(name) {
      zone.delete(normaliseName(name));
    },
    setMode(next) {
      mode = next;
    },
    queries,
    stop() {
      stopped ??= (async () => {
        for (const socket of tcpSockets) socket.destroy();
        await Promise.all([
          new Promise<void>((resolve) => udp.close(() => resolve())),
          tcp === undefined ? Promise.resolve() : new Promise<void>((resolve) => tcp.close(() => resolve())),
        ]);
      })();
      return stopped;
    },
  };
}

type Responder = (request: Packet, send: (response: Packet) => Promise<Buffer>, transport: 'udp' | 'tcp') => void;

interface Bound {
  udp: InstanceType<typeof UDPServer>;
  tcp: InstanceType<typeof TCPServer> | undefined;
  port: number;
  tcpSockets: Set<Socket>;
}

async function bindBoth(host: string, wantedPort: number, respond: Responder): Promise<Bound> {
  const family = host.includes(':') ? 'udp6' : 'udp4';
  for (let attempt = 1; ; attempt += 1) {
    const udp = new UDPServer({ type: family });
    udp.on('request', (request, send) => respond(request, send as (r: Packet) => Promise<Buffer>, 'udp'));
    // A malformed datagram must not take the test server down.
    udp.on('requestError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(wantedPort, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = (udp.address() as AddressInfo).port;

    const tcpSockets = new Set<Socket>();
    const tcp = new TCPServer();
    tcp.on('request', (request, send) => respond(request, send as (r: Packet) => Promise<Buffer>, 'tcp'));
    tcp.on('requestError', () => undefined);
    tcp.on('connection', (socket: Socket) => {
      tcpSockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => tcpSockets.delete(socket));
    });
    const tcpBound = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, host, () => resolve(true));
    });
    if (tcpBound) return { udp, tcp, port, tcpSockets };

    // The UDP port is taken for TCP by someone else: try another pair, or settle for UDP only.
    if (wantedPort !== 0 || attempt >= PORT_ATTEMPTS) return { udp, tcp: undefined, port, tcpSockets };
    await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
}
