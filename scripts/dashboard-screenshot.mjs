// Takes docs/dashboard.png (README "Integration"): starts one node from dist/ on a temporary
// database (port 0), counts a few pages' views as a collector with a write token, opens
// /dashboard in Debian's Chromium and saves a screenshot. `node scripts/dashboard-screenshot.mjs
// [out.png] [light|dark] [width]`; needs /usr/bin/chromium and the devDependency playwright-core.
/* global fetch, document -- Node's fetch; document inside page.waitForFunction (runs in the browser) */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { URL, fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const [out = join(root, 'docs', 'dashboard.png'), scheme = 'light', width = '1000'] = process.argv.slice(2);
const CHROMIUM = '/usr/bin/chromium';
const LISTEN_TIMEOUT_MS = 20_000;
const SEED = [
  ['/', 1840],
  ['/blog/conflict-free-counters', 1312],
  ['/docs/getting-started', 904],
  ['/blog/litestream-backups', 587],
  ['/pricing', 341],
  ['/docs/replication', 196],
];

execFileSync(process.execPath, [join(root, 'scripts', 'ensure-built.mjs')], { stdio: 'inherit' });
const dir = mkdtempSync(join(tmpdir(), 'dashboard-shot-'));
const token = randomBytes(16).toString('hex');
const node = spawn(process.execPath, [join(root, 'dist', 'src', 'main.js')], {
  cwd: root,
  env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: join(dir, 'counters.db'), NODE_NAME: 'ams-1', WRITE_TOKENS: token, LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'inherit'],
});

try {
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the node did not start')), LISTEN_TIMEOUT_MS);
    let buffered = '';
    node.stdout.setEncoding('utf8').on('data', (chunk) => {
      buffered += chunk;
      for (const line of buffered.split('\n')) {
        try {
          const entry = JSON.parse(line);
          if (entry.msg === 'listening' && typeof entry.url === 'string') {
            clearTimeout(timer);
            resolve(`http://127.0.0.1:${entry.port}`);
          }
        } catch {
          // A partial line: wait for the rest.
        }
      }
    });
    node.once('exit', (code) => reject(new Error(`the node exited with ${code}`)));
  });
  const response = await fetch(`${url}/api/views`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ views: SEED.map(([page, by]) => ({ page, by })) }),
  });
  if (response.status !== 200) throw new Error(`seeding failed: ${response.status} ${await response.text()}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    const context = await browser.newContext({ viewport: { width: Number(width), height: 900 }, colorScheme: scheme === 'dark' ? 'dark' : 'light' });
    const page = await context.newPage();
    await page.goto(`${url}/dashboard#page=${encodeURIComponent(SEED[1][0])}`);
    await page.waitForFunction(() => document.getElementById('feed-status')?.getAttribute('data-state') === 'live');
    await page.waitForFunction((n) => document.querySelectorAll('#top-rows .spark-chart canvas').length === n, SEED.length);
    await page.waitForSelector('#detail-chart canvas');
    await page.screenshot({ path: out, fullPage: true, animations: 'disabled' });
    process.stdout.write(`${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  node.kill('SIGTERM');
  await new Promise((resolve) => (node.exitCode !== null ? resolve() : node.once('exit', resolve)));
  rmSync(dir, { recursive: true, force: true });
}
