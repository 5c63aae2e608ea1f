import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { parsePeerList, StaticDiscovery } from '../../src/discovery/static-discovery.js';
import { parseHostPort } from '../../src/host-port.js';

function errorOf(text: string): string {
  const parsed = parseHostPort(text);
  if (!('error' in parsed)) throw new Error(`expected "${text}" to be refused, got ${JSON.stringify(parsed)}`);
  return parsed.error;
}

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
