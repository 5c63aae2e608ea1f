/**
 * A port free on several loopback addresses at once, so a cluster whose nodes share one port can
 * have PEERS written before any node starts. Also used by the test clusters (test/helpers).
 */
import { createServer } from 'node:net';

/** Attempts at finding a port free on every address given. */
const FREE_PORT_ATTEMPTS = 20;

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

/**
 * A port free on every host given right now: picked by the kernel on the first, checked on the
 * others (the process binding it later may still race).
 */
export async function freePortOn(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS; attempt++) {
    const port = await canListen(hosts[0] as string, 0);
    if (port === undefined) continue;
    const rest = await Promise.all(hosts.slice(1).map((host) => canListen(host, port)));
    if (rest.every((p) => p === port)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}
