/**
 * A /healthz prober in a process of its own (the pressure phase's fan-out flood): the bench's own
 * process is busy reading 1,000 live sockets then, and a probe there would time its own event
 * loop, not the node's. Probes `<url>/healthz` every `<interval>` ms, one request at a time, until
 * its stdin ends; then prints `{"count","p50","p99","max"}` (ms) on stdout and exits.
 *
 *   node dist/bench/healthz-prober.js http://127.0.0.1:8080 20
 */
import { HttpTarget } from './http-client.js';
import { percentile, round } from './stats.js';

const [url, intervalText] = process.argv.slice(2);
if (url === undefined) throw new Error('usage: healthz-prober <url> [interval ms]');
const intervalMs = Number(intervalText ?? '20');
const http = new HttpTarget(url, { maxSockets: 1 });
const times: number[] = [];
let running = true;
process.stdin.resume();
process.stdin.on('end', () => (running = false));

while (running) {
  const started = performance.now();
  try {
    await http.send('GET', '/healthz');
  } catch {
    // A refused probe still measured the wait.
  }
  times.push(performance.now() - started);
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
http.close();
const sorted = [...times].sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({ count: sorted.length, p50: round(percentile(sorted, 50), 1), p99: round(percentile(sorted, 99), 1), max: round(sorted[sorted.length - 1] ?? Number.NaN, 1) })}\n`);
