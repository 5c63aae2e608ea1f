/** startNode in-process: the upgrade dispatcher, the listening line, and an idempotent stop. */
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
const running: RunningNode[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((n) => n.stop()));
  await dirs.removeAll();
});

async function start(options: { warmUp?: boolean } = {}): Promise<{ node: RunningNode; logs: Array<Record<string, unknown>> }> {
  const dir = await dirs.create('start-node-');
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    }),
  });
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: join(dir, 'c.db'), NODE_NAME: 'n1' });
  const node = await startNode(config, { log, ...options });
  running.push(node);
  return { node, logs };
}

function upgrade(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { connection: 'upgrade', upgrade: 'test' } });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(`upgraded ${res.headers['x-path'] as string}`);
    });
    req.on('response', (res) => resolve(`response ${res.statusCode}`));
    req.on('error', () => resolve('destroyed'));
    req.end();
  });
}

describe('startNode', () => {
  it('logs one listening line with the actual port and url', async () => {
    const { node, logs } = await start();
    const listening = logs.filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ port: node.port, url: `http://127.0.0.1:${node.port}` });
    expect(node.port).toBeGreaterThan(0);
    expect(await (await fetch(`${node.url}/healthz`)).json()).toEqual({ status: 'ok' });
  });

  it('warms up before listening only when asked (a process of its own), and then serves as before', async () => {
    const plain = await start();
    expect(plain.logs.find((l) => l.msg === 'listening')).not.toHaveProperty('warmUpMs');
    const warmed = await start({ warmUp: true });
    const listening = warmed.logs.find((l) => l.msg === 'listening');
    expect(listening?.warmUpMs).toEqual(expect.any(Number));
    expect(warmed.logs.filter((l) => l.level === 40)).toEqual([]);
    // The warm-up's requests went through a copy of the app with metrics of its own.
    const metrics = await warmed.node.metrics.render();
    expect(metrics).not.toMatch(/^dsqlite_http_requests_total\{/m);
    expect(metrics).toMatch(/^dsqlite_store_pages 0$/m);
    expect(await (await fetch(`${warmed.node.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await warmed.node.metrics.render()).toMatch(/^dsqlite_http_requests_total\{route="\/healthz",method="GET",status="200"\} 1$/m);
  });

  it('routes upgrades by path and answers unknown ones 404', async () => {
    const { node } = await start();
    const unmount = node.upgrades.mount('/test-upgrade', (req, socket) => {
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\nX-Path: ${req.url as string}\r\n\r\n`);
    });
    expect(await upgrade(node.port, '/test-upgrade?x=1')).toBe('upgraded /test-upgrade?x=1');
    expect(await upgrade(node.port, '/elsewhere')).toBe('response 404');
    // Peers are not served on the public port.
    expect(await upgrade(node.port, '/cluster')).toBe('response 404');
    expect(() => node.upgrades.mount('/test-upgrade', () => undefined)).toThrow(/already mounted/);
    unmount();
    expect(await upgrade(node.port, '/test-upgrade')).toBe('response 404');
  });

  it('stops idempotently: the port closes and the store refuses increments', async () => {
    const { node, logs } = await start();
    await fetch(`${node.url}/api/pages/a/views`, { method: 'POST' });
    const first = node.stop();
    expect(node.stop()).toBe(first);
    await first;
    await node.stop();
    expect(logs.filter((l) => l.msg === 'stopped')).toHaveLength(1);
    await expect(fetch(`${node.url}/healthz`)).rejects.toThrow();
    await expect(node.store.increment([])).rejects.toMatchObject({ code: 'shutting_down' });
  });

  it('fails to start on a taken port and leaves nothing open or created', async () => {
    const { node } = await start();
    const dir = await dirs.create('start-node-');
    const config = loadConfig({ PORT: String(node.port), HOST: '127.0.0.1', DATABASE_PATH: join(dir, 'data', 'c.db') });
    await expect(startNode(config, { log: createLogger({ level: 'silent' }) })).rejects.toMatchObject({
      code: 'start_failed',
      message: expect.stringMatching(/^cannot listen on 127\.0\.0\.1:\d+ \(PORT\): the port is in use/),
    });
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});
