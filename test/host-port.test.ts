import { describe, expect, it } from 'vitest';
import { formatHostPort, hostProblem, ipEndpointProblem, normaliseHostPort, parseHostPort } from '../src/host-port.js';

function errorOf(text: string): string {
  const parsed = parseHostPort(text);
  if (!('error' in parsed)) throw new Error(`expected "${text}" to be refused, got ${JSON.stringify(parsed)}`);
  return parsed.error;
}

describe('parseHostPort', () => {
  it.each([
    ['node-1:8080', { host: 'node-1', port: 8080 }],
    ['Node-1.Example.COM:1', { host: 'node-1.example.com', port: 1 }],
    ['my_service:65535', { host: 'my_service', port: 65535 }],
    ['app.internal.:8080', { host: 'app.internal.', port: 8080 }],
    ['127.0.0.2:8080', { host: '127.0.0.2', port: 8080 }],
    ['0.0.0.0:1', { host: '0.0.0.0', port: 1 }],
    ['255.255.255.255:65535', { host: '255.255.255.255', port: 65535 }],
    ['1a.example:80', { host: '1a.example', port: 80 }],
    ['a:80', { host: 'a', port: 80 }],
    [`${'a'.repeat(63)}.com:8080`, { host: `${'a'.repeat(63)}.com`, port: 8080 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[0:0:0:0:0:0:0:1]:9', { host: '::1', port: 9 }],
    ['[FDAA:0:1::2]:8080', { host: 'fdaa:0:1::2', port: 8080 }],
    ['[::ffff:10.0.0.1]:80', { host: '::ffff:a00:1', port: 80 }],
    ['  localhost:80 ', { host: 'localhost', port: 80 }],
  ])('accepts %s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['node-1', /no port: write host:port/],
    ['node-1:', /no port after the colon/],
    [':80', /the host is empty/],
    ['node-1:http', /port "http", which is not a number/],
    ['node-1:0', /port 0, outside 1–65535/],
    ['node-1:65536', /port 65536, outside 1–65535/],
    ['node-1:99999', /outside 1–65535/],
    ['node-1:-1', /not a number/],
    ['node-1:+80', /not a number/],
    ['node-1:8 0', /not a number/],
    ['::1:8080', /IPv6 address in brackets/],
    ['fdaa::2', /IPv6 address in brackets/],
    ['[::1]', /no port/],
    ['[::1:8080', /without closing/],
    ['[node-1]:8080', /not an IPv6 address/],
    ['[10.0.0.1]:8080', /not an IPv6 address/],
    ['[::1]8080', /no port/],
    ['256.0.0.1:8080', /not a valid IPv4 address/],
    ['10.0.0.300:80', /not a valid IPv4 address/],
    ['1.2.3:8080', /not a valid IPv4 address/],
    ['1.2.3.4.5:8080', /not a valid IPv4 address/],
    ['10.0.0.1.:80', /not a valid IPv4 address/],
    ['8080:80', /not a valid IPv4 address/],
    ['-node:8080', /may only contain letters/],
    ['node-:8080', /may only contain letters/],
    ['a.-b.c:80', /may only contain letters/],
    ['no de:8080', /may only contain letters/],
    ['nodé:8080', /may only contain letters/],
    ['a/b:80', /may only contain letters/],
    ['http://node-1:8080', /not host:port|may only contain/],
    ['user@node-1:8080', /may only contain letters/],
    ['a..b:8080', /empty label/],
    ['.a:8080', /empty label/],
    ['a.b..:8080', /empty label/],
    [`${'a'.repeat(64)}.com:8080`, /longer than 63/],
    [`${'a.'.repeat(127)}ab:8080`, /at most 253/],
  ])('refuses %j', (text, message) => {
    expect(errorOf(text)).toMatch(message);
  });

  it('names the offending entry in its message', () => {
    expect(errorOf('node-1:99999')).toContain('"node-1:99999"');
    expect(errorOf('10.0.0.300:80')).toContain('"10.0.0.300:80"');
  });

  it('formats back to what it parsed, IPv6 in brackets', () => {
    for (const text of ['node-1:8080', '10.0.0.2:1', '[fdaa::2]:8080', '[::1]:65535']) {
      const parsed = parseHostPort(text);
      if ('error' in parsed) throw new Error(parsed.error);
      expect(formatHostPort(parsed)).toBe(text);
    }
    expect(normaliseHostPort('[0::1]:1')).toBe('[::1]:1');
    expect(normaliseHostPort('NODE:1')).toBe('node:1');
    expect(normaliseHostPort('nope')).toBeUndefined();
  });
});

describe('hostProblem', () => {
  it.each(['::', '::1', '0.0.0.0', '10.0.0.2', 'localhost', 'node-1.internal'])('accepts %s', (host) => {
    expect(hostProblem(host)).toBeUndefined();
  });

  it.each(['', 'not a host', '1.2.3', '10.0.0.300', 'node-', '[::1]'])('refuses %j', (host) => {
    expect(hostProblem(host)).toBeDefined();
  });
});

describe('ipEndpointProblem', () => {
  it.each(['10.0.0.53', '127.0.0.1:5353', '::1', 'fdaa::3', '[::1]:5353'])('accepts %s', (text) => {
    expect(ipEndpointProblem(text)).toBeUndefined();
  });

  it.each([
    ['dns.example', /must be an IP address/],
    ['dns.example:53', /must be an IP address/],
    ['[dns.example]:53', /not an IPv6 address/],
    ['127.0.0.1:0', /outside 1–65535/],
    ['127.0.0.1:', /no port/],
    ['[::1]', /no port/],
    ['300.0.0.1', /must be an IP address/],
    ['1.2.3:53', /not a valid IPv4/],
  ])('refuses %s', (text, message) => {
    expect(ipEndpointProblem(text)).toMatch(message);
  });
});
