import { afterEach, describe, expect, it } from 'vitest';
import { CombinedDiscovery } from '../../src/discovery/combined-discovery.js';
import { createDiscovery } from '../../src/discovery/create-discovery.js';
import { DnsDiscovery } from '../../src/discovery/dns-discovery.js';
import { StaticDiscovery } from '../../src/discovery/static-discovery.js';
import { a, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';

let dns: TestDnsServer | undefined;
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});

describe('createDiscovery', () => {
  it('uses PEERS alone when no DNS name is configured', async () => {
    const discovery = createDiscovery({ peers: ['b:1', 'a:1'], port: 8080 });
    expect(discovery).toBeInstanceOf(StaticDiscovery);
    expect(await discovery.resolve()).toEqual(['a:1', 'b:1']);
  });

  it('uses DNS alone when PEERS is empty, and the union when both are set', async () => {
    dns = await startDnsServer({ records: { 'app.internal': [a('127.0.0.2')] } });
    const dnsOnly = createDiscovery({ peers: [], dnsName: 'app.internal', dnsServer: dns.server, port: 8080 });
    expect(dnsOnly).toBeInstanceOf(DnsDiscovery);
    expect(await dnsOnly.resolve()).toEqual(['127.0.0.2:8080']);
    const both = createDiscovery({ peers: ['node-9:8080'], dnsName: 'app.internal', dnsServer: dns.server, port: 8080 });
    expect(both).toBeInstanceOf(CombinedDiscovery);
    expect(await both.resolve()).toEqual(['127.0.0.2:8080', 'node-9:8080']);
  });

  it('refuses a bad configuration', () => {
    expect(() => createDiscovery({ peers: ['nope'], port: 8080 })).toThrow(/PEERS/);
    expect(() => createDiscovery({ peers: [], dnsName: 'app.internal', dnsServer: 'resolver.local', port: 8080 })).toThrow(/IP address/);
  });
});
