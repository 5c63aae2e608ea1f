import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { normalisePeerAddress } from '../../src/discovery/peer-address.js';
import { formatPeerAddress, parsePeerAddress, parsePeerList, StaticDiscovery } from '../../src/discovery/static-discovery.js';

function errorOf(text: string): string {
  const parsed = parsePeerAddress(text);
  if (!('error' in parsed)) throw new Error(`expected "${text}" to be refused, got ${JSON.stringify(parsed)}`);
  return parsed.error;
}

describe('parsePeerAddress', () => {
  it.each([
    ['node-1:8080', { host: 'node-1', port: 8080 }],
    ['Node-1.Example.COM:1', { host: 'node-1.example.com', port: 1 }],
    ['my_service:65535', { host: 'my_service', port: 65535 }],
    ['app.internal.:8080', { host: 'app.internal.', port: 8080 }],
    ['127.0.0.2:8080', { host: '127.0.0.2', port: 8080 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[0:0:0:0:0:0:0:1]:9', { host: '::1', port: 9 }],
    ['[FDAA:0:1::2]:8080', { host: 'fdaa:0:1::2', port: 8080 }],
    ['  localhost:80 ', { host: 'localhost', port: 80 }],
  ])('accepts %s', (text, expected) => {
    expect(parsePeerAddress(text)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['node-1', /no port: write host:port/],
    ['node-1:', /no port after the colon/],
    ['node-1:http', /port "http", which is not a number/],
    ['node-1:0', /port 0, outside 1–65535/],
    ['node-1:65536', /port 65536, outside 1–65535/],
    ['node-1:-1', /not a number/],
    ['::1:8080', /IPv6 address in brackets/],
    ['fdaa::2', /IPv6 address in brackets/],
    ['[::1]', /no port/],
    ['[::1:8080', /without closing/],
    ['[node-1]:8080', /not an IPv6 address/],
    ['[::1]8080', /no port/],
    ['256.0.0.1:8080', /not a valid IPv4 address/],
    ['1.2.3:8080', /not a valid IPv4 address/],
    ['-node:8080', /may only contain letters/],
    ['node-:8080', /may only contain letters/],
    ['no de:8080', /may only contain letters/],
    ['http://node-1:8080', /not host:port|may only contain/],
    ['a..b:8080', /empty label/],
    [`${'a'.repeat(64)}.com:8080`, /longer than 63/],
    [`${'a.'.repeat(127)}ab:8080`, /at most 253/],
  ])('refuses %j', (text, message) => {
    expect(errorOf(text)).toMatch(message);
  });

  it('names the offending entry in its message', () => {
    expect(errorOf('node-1:99999')).toContain('"node-1:99999"');
  });

  it('formats back to what it parsed, IPv6 in brackets', () => {
    for (const text of ['node-1:8080', '10.0.0.2:1', '[fdaa::2]:8080', '[::1]:65535']) {
      const parsed = parsePeerAddress(text);
      if ('error' in parsed) throw new Error(parsed.error);
      expect(formatPeerAddress(parsed)).toBe(text);
    }
    expect(normalisePeerAddress('[0::1]:1')).toBe('[::1]:1');
    expect(normalisePeerAddress('nope')).toBeUndefined();
  });
});

describe('StaticDiscovery', () => {
  it('returns the normalised list, deduplicated and sorted, host names unresolved', async () => {
    const discovery = new StaticDiscovery(['node-b:8080', 'NODE-A:8080', '[::1]:8080', 'node-b:8080', '[0::1]:8080']);
    expect(await discovery.resolve()).toEqual(['[::1]:8080', 'node-a:8080', 'node-b:8080']);
  });

  it('returns an empty list for no peers', async () => {
    expect(await new StaticDiscovery([]).resolve()).toEqual([]);
  });

  it('refuses invalid entries with bad_config naming every one', () => {
    let caught: unknown;
    try {
      new StaticDiscovery(['ok:1', 'bad', 'also-bad:0']);
    } catch (error) {
      caught = error;
    }
    expect(isAppError(caught) && caught.code).toBe('bad_config');
    expect((caught as Error).message).toMatch(/^PEERS: .*"bad".*; .*"also-bad:0"/);
  });

  it('parsePeerList reports all problems at once', () => {
    expect(parsePeerList(['a:1', 'b', 'c:x'])).toEqual({ errors: [errorOf('b'), errorOf('c:x')] });
    expect(parsePeerList(['b:2', 'a:1'])).toEqual({ peers: ['a:1', 'b:2'] });
  });
});
