import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { addressKey, clientKey, UNKNOWN_CLIENT } from '../../src/http/client-address.js';

function request(remoteAddress: string | undefined, headers: Record<string, string> = {}): IncomingMessage {
  return { headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

describe('client address', () => {
  it('keys IPv4 by address and IPv6 by its /64, IPv4-mapped IPv6 as IPv4', () => {
    expect(addressKey('203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(addressKey('not an address')).toBeUndefined();
    expect(addressKey('')).toBeUndefined();
  });

  it('uses the socket address and ignores forwarded headers unless the proxy is trusted', () => {
    const spoofed = request('198.51.100.1', { 'fly-client-ip': '203.0.113.9', 'x-forwarded-for': '192.0.2.5' });
    expect(clientKey(spoofed, false)).toBe('198.51.100.1');
    expect(clientKey(spoofed, true)).toBe('203.0.113.9');
  });

  it('behind a trusted proxy: Fly-Client-IP, else the last X-Forwarded-For entry, else the socket', () => {
    expect(clientKey(request('10.0.0.1', { 'x-forwarded-for': '6.6.6.6, 192.0.2.5' }), true)).toBe('192.0.2.5');
    expect(clientKey(request('10.0.0.1', { 'fly-client-ip': 'junk', 'x-forwarded-for': 'junk' }), true)).toBe('10.0.0.1');
    expect(clientKey(request(undefined), false)).toBe(UNKNOWN_CLIENT);
  });
});
