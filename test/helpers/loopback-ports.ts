/**
 * Addresses and ports for real processes on loopback. Every 127/8 address is loopback on Linux,
 * so a cluster can take a random /24 of its own and never share an address with a test file
 * running in parallel.
 */
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

/** Attempts at finding a port free on every address given. */
const FREE_PORT_ATTEMPTS = 20;

/** A random /24 inside 127/8, avoiding 127.0.0.0/24 (where other tests and services live). */
export function randomLoopbackSubnet(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}`;
}

function canListen(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host, port, exclusive: true }, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

/** A port free on every host given right now (the node binding it later may still race). */
export async function freePortOn(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS; attempt++) {
    const port = await canListen(hosts[0] as string, 0);
    if (port === undefined) continue;
    const rest = await Promise.all(hosts.slice(1).map((host) => canListen(host, port)));
    if (rest.every((p) => p === port)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}
