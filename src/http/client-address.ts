/**
 * The client address a request is limited under. By default the socket's peer address: the one
 * thing a client cannot choose for itself. Behind a proxy (TRUST_PROXY; on by default on Fly.io)
 * every request comes from the proxy, so the address is read from what the proxy adds instead:
 * `Fly-Client-IP` (Fly's proxy sets it and overwrites any the client sent), else the last entry
 * of `X-Forwarded-For` (the one the proxy in front of this node appended; entries before it are
 * whatever the client claimed). Without a proxy these headers are the client's own words, which
 * is why they are ignored unless TRUST_PROXY says otherwise.
 *
 * The key is the IPv4 address, or the /64 prefix of an IPv6 address: one host is usually given a
 * whole /64, so per-address keys would give it 2^64 fresh limits.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** Key of requests whose address is unknown or malformed (they share one limit). */
export const UNKNOWN_CLIENT = 'unknown';

export function clientKey(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const fly = single(req.headers['fly-client-ip']);
    const fromFly = fly === undefined ? undefined : addressKey(fly.trim());
    if (fromFly !== undefined) return fromFly;
    const forwarded = single(req.headers['x-forwarded-for']);
    if (forwarded !== undefined) {
      const fromForwarded = addressKey(forwarded.slice(forwarded.lastIndexOf(',') + 1).trim());
      if (fromForwarded !== undefined) return fromForwarded;
    }
  }
  return addressKey(req.socket.remoteAddress ?? '') ?? UNKNOWN_CLIENT;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

/** `a.b.c.d`, or `x:x:x:x::/64` for IPv6 (IPv4-mapped IPv6 as IPv4); undefined if not an address. */
export function addressKey(address: string): string | undefined {
  const zone = address.indexOf('%');
  const ip = (zone === -1 ? address : address.slice(0, zone)).toLowerCase();
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped !== null) return mapped[1];
  const gap = ip.indexOf('::');
  const head = gap === -1 ? ip : ip.slice(0, gap);
  const tail = gap === -1 ? '' : ip.slice(gap + 2);
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  // A trailing dotted quad stands for two groups; it lies past the /64 either way.
  const written = headGroups.length + tailGroups.length + (tailGroups.some((g) => g.includes('.')) || headGroups.some((g) => g.includes('.')) ? 1 : 0);
  const groups = [...headGroups, ...Array.from({ length: Math.max(0, 8 - written) }, () => '0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
