import { describe, expect, it } from 'vitest';
import { SETTINGS, flagName, loadConfig, usage } from '../src/config.js';
import { DEFAULT_MAX_BODY_BYTES } from '../src/settings.js';
import { ConfigError } from '../src/errors.js';
import { parsePeerList } from '../src/discovery/static-discovery.js';
import { tokenMatches } from '../src/tokens.js';

const HOST = { hostname: 'box-1', pid: 4242 };
/** Long enough for MIN_CLUSTER_SECRET_LENGTH. */
const SECRET = 'config-test-secret-0123456789abcdef';

function problemsOf(env: Record<string, string>, argv: string[] = []): readonly string[] {
  try {
    loadConfig(env, argv, HOST);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({}, [], HOST);
    expect(config).toMatchObject({
      port: 8080,
      host: '::',
      databasePath: './data/counters.db',
      nodeName: 'box-1-8080',
      clusterPort: 8081,
      clusterHost: '::',
      clusterEnabled: false,
      adminTokens: [],
      peers: [],
      discoveryDns: undefined,
      discoveryDnsServer: undefined,
      discoveryIntervalMs: 5000,
      clusterSecret: '',
      clusterName: 'distributed-sqlite',
      logLevel: 'info',
      corsOrigins: '*',
      sqliteSynchronous: 'normal',
      checkpoints: 'sqlite',
      heartbeatIntervalMs: 1000,
      heartbeatTimeoutMs: 5000,
      antiEntropyIntervalMs: 2000,
      region: undefined,
      flyAppName: undefined,
      privateIp: undefined,
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      writeTokens: [],
      rateLimitPerIp: 10,
      rateLimitBurst: 50,
      trustProxy: false,
      maxPages: 100_000,
      analytics: true,
      hourlyRetentionDays: 35,
      pagePattern: undefined,
      warnings: [],
    });
    expect(DEFAULT_MAX_BODY_BYTES).toBe(1024 * 1024);
  });

  it('is frozen, lists included', () => {
    const config = loadConfig({ PEERS: 'a:1', CLUSTER_SECRET: SECRET, CORS_ORIGINS: 'https://a.example' }, [], HOST);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.peers)).toBe(true);
    expect(Object.isFrozen(config.corsOrigins)).toBe(true);
  });

  it('derives node name, cluster name, discovery and region from Fly.io variables', () => {
    const config = loadConfig({ FLY_APP_NAME: 'counters', FLY_MACHINE_ID: '148e21', FLY_REGION: 'ams', CLUSTER_SECRET: SECRET }, [], HOST);
    expect(config.nodeName).toBe('148e21');
    expect(config.clusterName).toBe('counters');
    expect(config.discoveryDns).toBe('counters.internal');
    expect(config.region).toBe('ams');
    expect(config.flyAppName).toBe('counters');
  });

  it('takes FLY_PRIVATE_IP as the advertised 6PN address and refuses one that is not an IP', () => {
    expect(loadConfig({ FLY_PRIVATE_IP: 'fdaa:0:1:a7b:1::2' }, [], HOST).privateIp).toBe('fdaa:0:1:a7b:1::2');
    expect(() => loadConfig({ FLY_PRIVATE_IP: 'not-an-ip' }, [], HOST)).toThrow(/FLY_PRIVATE_IP .*must be an IP address/);
  });

  it('lets explicit settings win over Fly.io defaults', () => {
    const config = loadConfig({ FLY_APP_NAME: 'counters', FLY_MACHINE_ID: 'm', NODE_NAME: 'n1', CLUSTER_NAME: 'c', DISCOVERY_DNS: 'peers.test', CLUSTER_SECRET: SECRET }, [], HOST);
    expect([config.nodeName, config.clusterName, config.discoveryDns]).toEqual(['n1', 'c', 'peers.test']);
  });

  it('turns analytics off with ANALYTICS=false (or 0, no, off) and refuses other words', () => {
    for (const word of ['false', '0', 'no', 'off']) expect(loadConfig({ ANALYTICS: word }, [], HOST).analytics).toBe(false);
    expect(loadConfig({}, ['--analytics', 'true'], HOST).analytics).toBe(true);
    expect(problemsOf({ ANALYTICS: 'sometimes' }).some((p) => p.includes('ANALYTICS'))).toBe(true);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', PEERS: ' ', LOG_LEVEL: '' }, [], HOST)).toMatchObject({ port: 8080, peers: [], logLevel: 'info' });
  });

  it('defaults the node name to the host name when nothing else is given', () => {
    expect(loadConfig({}, []).nodeName.length).toBeGreaterThan(0);
  });
});

describe('loadConfig flags', () => {
  it('accepts --flag value and --flag=value', () => {
    const config = loadConfig({}, ['--port', '9000', '--database-path=/tmp/x.db', '--log-level', 'debug'], HOST);
    expect([config.port, config.databasePath, config.logLevel]).toEqual([9000, '/tmp/x.db', 'debug']);
  });

  it('lets flags win over the environment', () => {
    expect(loadConfig({ PORT: '1000' }, ['--port=2000'], HOST).port).toBe(2000);
  });

  it('has a flag for every setting, named after it in lower kebab case', () => {
    expect(flagName('DATABASE_PATH')).toBe('--database-path');
    expect(flagName('CLUSTER_SECRET')).toBe('--cluster-secret');
    for (const setting of SETTINGS) expect(() => loadConfig({}, [`${flagName(setting.env)}=x`], HOST)).not.toThrow(/unknown flag/);
  });

  it('accepts --litestream alone as true', () => {
    expect(loadConfig({}, ['--litestream'], HOST).checkpoints).toBe('external');
    expect(loadConfig({}, ['--litestream', '--port', '1'], HOST)).toMatchObject({ checkpoints: 'external', port: 1 });
  });

  it('refuses unknown flags, stray arguments and flags without a value', () => {
    const problems = problemsOf({}, ['--prot', '1', 'oops', '--port']);
    expect(problems).toContain('unknown flag --prot');
    expect(problems.some((p) => p.includes('"1"'))).toBe(true);
    expect(problems.some((p) => p.includes('"oops"'))).toBe(true);
    expect(problems).toContain('flag --port needs a value');
  });
});

describe('loadConfig validation', () => {
  it('names every problem in one error', () => {
    const env = {
      PORT: '70000',
      LOG_LEVEL: 'loud',
      PEERS: 'nohost,ok:1,[::1]:0',
      SQLITE_SYNCHRONOUS: 'off',
      CORS_ORIGINS: 'example.com',
      MAX_BODY_BYTES: '-1',
      HEARTBEAT_INTERVAL_MS: '1.5',
      LITESTREAM: 'maybe',
      DISCOVERY_DNS_SERVER: 'dns.example',
      NODE_NAME: 'has space',
      CLUSTER_SECRET: 'short',
    };
    let error: unknown;
    try {
      loadConfig(env, [], HOST);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const name of ['PORT', 'LOG_LEVEL', '"nohost"', '"[::1]:0"', 'SQLITE_SYNCHRONOUS', 'CORS_ORIGINS', 'MAX_BODY_BYTES', 'HEARTBEAT_INTERVAL_MS', 'LITESTREAM', 'DISCOVERY_DNS_SERVER', 'NODE_NAME', 'CLUSTER_SECRET']) {
      expect(message).toContain(name);
    }
    expect((error as ConfigError).problems).toHaveLength(12);
  });

  it.each([
    ['PORT', '-1'],
    ['PORT', 'abc'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['HOST', 'not a host'],
    ['DATABASE_PATH', ':memory:'],
    ['DISCOVERY_DNS', 'bad name!'],
    ['DISCOVERY_INTERVAL_MS', '0'],
    ['CLUSTER_NAME', 'a/b'],
    ['LOG_LEVEL', 'verbose'],
    ['CORS_ORIGINS', 'https://a.example/path'],
    ['CORS_ORIGINS', 'ftp://a.example'],
    ['SQLITE_SYNCHRONOUS', 'extra'],
    ['ANTI_ENTROPY_INTERVAL_MS', '1e3'],
    ['MAX_BODY_BYTES', '0'],
    ['MAX_BODY_BYTES', String(1024 ** 3)],
    ['DISCOVERY_DNS_SERVER', '1.2.3.4:99999'],
  ])('refuses %s=%s', (key, value) => {
    const problems = problemsOf({ [key]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(key);
  });

  it('accepts port 0 (ephemeral) and the range ends', () => {
    expect(loadConfig({ PORT: '0' }, [], HOST).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }, [], HOST).port).toBe(65535);
  });

  it('requires the heartbeat timeout to exceed the interval', () => {
    const problems = problemsOf({ HEARTBEAT_INTERVAL_MS: '3000', HEARTBEAT_TIMEOUT_MS: '3000' });
    expect(problems).toEqual([expect.stringContaining('HEARTBEAT_TIMEOUT_MS')]);
  });

  it('parses peers, IPv6 in brackets, and drops duplicates and empty entries', () => {
    const config = loadConfig({ PEERS: ' a.internal:8080, [fdaa::1]:8080,,a.internal:8080,10.0.0.1:1 ', CLUSTER_SECRET: SECRET }, [], HOST);
    expect(config.peers).toEqual(['a.internal:8080', '[fdaa::1]:8080', '10.0.0.1:1']);
  });

  it.each(['a', 'a:', ':80', 'fdaa::1:80', '[fdaa::1]', '[zz::1]:80', 'a:0', 'a:65536', 'a b:80'])('refuses the peer %j', (peer) => {
    expect(problemsOf({ PEERS: peer, CLUSTER_SECRET: SECRET })).toHaveLength(1);
  });

  it('normalises peers as discovery does, so one peer written two ways is one entry', () => {
    const config = loadConfig({ PEERS: 'Node-A:1,node-a:1,[0:0::1]:2,[::1]:2', CLUSTER_SECRET: SECRET }, [], HOST);
    expect(config.peers).toEqual(['node-a:1', '[::1]:2']);
  });

  // Each of these once passed configuration and then failed in discovery at start (exit 1 with a
  // stack trace): configuration applies the same parser (src/host-port.ts), so they stop here.
  it.each([
    ['1.2.3:8080', /not a valid IPv4 address/],
    ['10.0.0.300:80', /not a valid IPv4 address/],
    ['256.1.1.1:80', /not a valid IPv4 address/],
    ['node-:8080', /may only contain letters/],
    ['-node:8080', /may only contain letters/],
    ['a..b:80', /empty label/],
    [`${'a'.repeat(64)}:80`, /longer than 63/],
    ['node:+80', /not a number/],
  ])('refuses the peer %j as discovery would, naming it', (peer, message) => {
    const problems = problemsOf({ PEERS: `ok:1,${peer}`, CLUSTER_SECRET: SECRET });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('PEERS');
    expect(problems[0]).toContain(JSON.stringify(peer));
    expect(problems[0]).toMatch(message);
    expect(parsePeerList([peer])).toMatchObject({ errors: [expect.stringMatching(message)] });
  });

  it('refuses DISCOVERY_DNS and HOST names that discovery or the listener would refuse', () => {
    expect(problemsOf({ DISCOVERY_DNS: 'app-.internal' })).toEqual([expect.stringContaining('DISCOVERY_DNS')]);
    expect(problemsOf({ DISCOVERY_DNS: '1.2.3' })).toEqual([expect.stringMatching(/DISCOVERY_DNS.*not a valid IPv4/)]);
    expect(problemsOf({ HOST: '10.0.0.300' })).toEqual([expect.stringMatching(/HOST.*not a valid IPv4/)]);
    expect(problemsOf({ DISCOVERY_DNS_SERVER: '1.2.3:53' })).toEqual([expect.stringMatching(/DISCOVERY_DNS_SERVER.*not a valid IPv4/)]);
  });

  it('accepts a DNS server as ip or ip:port', () => {
    for (const server of ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:5353']) {
      expect(loadConfig({ DISCOVERY_DNS_SERVER: server }, [], HOST).discoveryDnsServer).toBe(server);
    }
  });

  it('normalises CORS origins and keeps * as any', () => {
    expect(loadConfig({ CORS_ORIGINS: '*' }, [], HOST).corsOrigins).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: 'https://A.example/, http://b.example:8080' }, [], HOST).corsOrigins).toEqual([
      'https://a.example',
      'http://b.example:8080',
    ]);
  });

  it('reads SQLITE_SYNCHRONOUS and LITESTREAM', () => {
    expect(loadConfig({ SQLITE_SYNCHRONOUS: 'FULL' }, [], HOST).sqliteSynchronous).toBe('full');
    expect(loadConfig({ LITESTREAM: '1' }, [], HOST).checkpoints).toBe('external');
    expect(loadConfig({ LITESTREAM: 'false' }, [], HOST).checkpoints).toBe('sqlite');
  });
});

describe('public surface settings', () => {
  it('reads WRITE_TOKENS as a rotation list, hashed, and refuses short or malformed tokens without echoing them', () => {
    const config = loadConfig({ WRITE_TOKENS: ' aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbbbbbb,' }, [], HOST);
    expect(config.writeTokens).toHaveLength(2);
    expect(tokenMatches('bbbbbbbbbbbbbbbbbbbb', config.writeTokens)).toBe(true);
    expect(tokenMatches('cccccccccccccccc', config.writeTokens)).toBe(false);
    const problems = problemsOf({ WRITE_TOKENS: 'aaaaaaaaaaaaaaaa,short-secret,has space in it!!!' });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/WRITE_TOKENS.*token 2 is 12 characters; tokens need at least 16/);
    expect(problems[1]).toMatch(/token 3 may hold only/);
    expect(problems.join(' ')).not.toContain('short-secret');
  });

  it('reads ADMIN_TOKENS the same way: hashed, none by default, short or malformed ones refused unechoed', () => {
    expect(loadConfig({}, [], HOST).adminTokens).toEqual([]);
    const config = loadConfig({ ADMIN_TOKENS: 'admin-token-0123456789, other-admin-token-abc' }, [], HOST);
    expect(tokenMatches('other-admin-token-abc', config.adminTokens)).toBe(true);
    expect(tokenMatches('admin-token-0123456789', config.writeTokens)).toBe(false);
    const problems = problemsOf({ ADMIN_TOKENS: 'admin-token-0123456789,tiny-admin' });
    expect(problems).toEqual([expect.stringMatching(/ADMIN_TOKENS.*token 2 is 10 characters/)]);
    expect(problems.join(' ')).not.toContain('tiny-admin');
  });

  it('reads the rate limit (0 = off) and refuses a burst of 0 or junk', () => {
    expect(loadConfig({ RATE_LIMIT_PER_IP: '0' }, [], HOST).rateLimitPerIp).toBe(0);
    expect(loadConfig({ RATE_LIMIT_PER_IP: '3', RATE_LIMIT_BURST: '7' }, [], HOST)).toMatchObject({ rateLimitPerIp: 3, rateLimitBurst: 7 });
    expect(problemsOf({ RATE_LIMIT_BURST: '0', RATE_LIMIT_PER_IP: 'lots' })).toEqual([
      expect.stringContaining('RATE_LIMIT_PER_IP'),
      expect.stringContaining('RATE_LIMIT_BURST'),
    ]);
  });

  it('trusts forwarded addresses by default on Fly.io only, and lets TRUST_PROXY decide', () => {
    expect(loadConfig({ FLY_APP_NAME: 'counters', CLUSTER_SECRET: SECRET }, [], HOST).trustProxy).toBe(true);
    expect(loadConfig({ FLY_APP_NAME: 'counters', CLUSTER_SECRET: SECRET, TRUST_PROXY: 'off' }, [], HOST).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'yes' }, [], HOST).trustProxy).toBe(true);
    expect(problemsOf({ TRUST_PROXY: 'maybe' })).toEqual([expect.stringContaining('TRUST_PROXY')]);
  });

  it('reads MAX_PAGES and compiles PAGE_PATTERN, refusing a bad or exponential one', () => {
    const config = loadConfig({ MAX_PAGES: '5', PAGE_PATTERN: '^/blog/[a-z0-9-]+$' }, [], HOST);
    expect(config.maxPages).toBe(5);
    expect(config.pagePattern?.test('/blog/hello-1')).toBe(true);
    expect(config.pagePattern?.test('/wp-login.php')).toBe(false);
    const problems = problemsOf({ PAGE_PATTERN: '^(a+)+$', MAX_PAGES: '-1' });
    expect(problems).toEqual([expect.stringContaining('MAX_PAGES'), expect.stringMatching(/PAGE_PATTERN.*repeats a group/)]);
    expect(problemsOf({ PAGE_PATTERN: '^[a-' })).toEqual([expect.stringMatching(/PAGE_PATTERN.*not a valid regular expression/)]);
  });
});

describe('cluster secret (fail closed)', () => {
  it('refuses peers without a secret, saying what to set and how to make one', () => {
    const problems = problemsOf({ PEERS: 'a:1' });
    expect(problems).toEqual([expect.stringMatching(/^CLUSTER_SECRET \(--cluster-secret\) must be set because PEERS is set: .*openssl rand -base64 32/)]);
  });

  it('refuses DNS discovery without a secret, also when Fly.io turns it on by default', () => {
    expect(problemsOf({ DISCOVERY_DNS: 'peers.test' })).toEqual([expect.stringContaining('because DISCOVERY_DNS is set')]);
    expect(problemsOf({ FLY_APP_NAME: 'x' })).toEqual([expect.stringContaining('DISCOVERY_DNS defaults to x.internal on Fly.io')]);
  });

  it('refuses a secret shorter than 32 characters, with or without peers', () => {
    expect(problemsOf({ PEERS: 'a:1', CLUSTER_SECRET: 'hunter2' })).toEqual([expect.stringMatching(/CLUSTER_SECRET .* is 7 characters; it needs at least 32/)]);
    expect(problemsOf({ CLUSTER_SECRET: 'x'.repeat(31) })).toHaveLength(1);
    expect(loadConfig({ CLUSTER_SECRET: 'x'.repeat(32) }, [], HOST).clusterSecret).toHaveLength(32);
  });

  it('opens the cluster port only with a secret: a lone node without one has none', () => {
    expect(loadConfig({}, [], HOST)).toMatchObject({ clusterSecret: '', clusterEnabled: false, warnings: [] });
    expect(loadConfig({ PEERS: 'a:1', CLUSTER_SECRET: SECRET }, [], HOST)).toMatchObject({ clusterSecret: SECRET, clusterEnabled: true, warnings: [] });
    expect(loadConfig({ CLUSTER_SECRET: SECRET }, [], HOST).clusterEnabled).toBe(true);
  });
});

describe('cluster port', () => {
  it('reads CLUSTER_PORT and CLUSTER_HOST (defaulting to HOST), and refuses the public port for both', () => {
    expect(loadConfig({ HOST: '127.0.0.1', CLUSTER_PORT: '0' }, [], HOST)).toMatchObject({ clusterPort: 0, clusterHost: '127.0.0.1' });
    expect(loadConfig({ CLUSTER_HOST: 'fly-local-6pn' }, [], HOST).clusterHost).toBe('fly-local-6pn');
    expect(problemsOf({ PORT: '9000', CLUSTER_PORT: '9000' })).toEqual([expect.stringContaining('CLUSTER_PORT (--cluster-port) must differ from PORT')]);
    expect(problemsOf({ CLUSTER_HOST: '1.2.3' })).toEqual([expect.stringMatching(/CLUSTER_HOST.*not a valid IPv4/)]);
    expect(loadConfig({ PORT: '0', CLUSTER_PORT: '0' }, [], HOST).clusterPort).toBe(0);
  });

});

describe('NODE_NAME default', () => {
  it('tells nodes on one machine apart: the host name and the port, or the pid when the port is picked at start', () => {
    expect(loadConfig({ PORT: '9000' }, [], HOST).nodeName).toBe('box-1-9000');
    expect(loadConfig({ PORT: '0' }, [], HOST).nodeName).toBe('box-1-p4242');
    expect(loadConfig({}, [], { hostname: 'vm.example.internal', pid: 1 }).nodeName).toBe('vm-8080');
    expect(loadConfig({ NODE_NAME: 'n1' }, [], HOST).nodeName).toBe('n1');
  });
});

describe('usage', () => {
  it('lists every setting with its flag', () => {
    const text = usage();
    for (const setting of SETTINGS) expect(text).toContain(`${setting.env} / ${flagName(setting.env)}`);
  });
});
