/**
 * What a run is judged by. Problems fail it (exit code 1): an acknowledged increment lost, a
 * sampled increment that never reached a peer's live feed. Targets are the project's speed and
 * cost goals: a missed one is reported, not fatal.
 */
import { SETTLE_TIMEOUT_MS } from './open-loop.js';
import { MEMORY_FIRST_PAGES } from './phases/memory.js';
import { LIMITER_OFF_LABEL, LIMITER_ON_LABEL } from './phases/throughput.js';
import type { BenchResult, TargetResult } from './result.js';

export function findProblems(ours: BenchResult['ours']): string[] {
  const problems: string[] = [];
  for (const f of ours.pressure ?? []) {
    if (f.acked !== f.counted) problems.push(`pressure (${f.name}): ${f.acked} views acknowledged but ${f.counted} counted`);
  }
  if (ours.startup !== undefined && ours.startup.countedPages !== ours.startup.pages) {
    problems.push(`startup phase: the node reported ${ours.startup.countedPages} pages, ${ours.startup.pages} were written`);
  }
  if (ours.loss !== undefined && ours.loss.pagesWrong > 0) problems.push(`LOST INCREMENTS: ${ours.loss.pagesWrong} page totals differ from what was acknowledged (lost per node: ${ours.loss.lostPerNode.join(', ')})`);
  for (const r of ours.latency) {
    if (r.samplesMissing > 0) {
      problems.push(
        `${r.samplesMissing} sample observations at ${r.rate}/s never showed on a peer's live feed within ${SETTLE_TIMEOUT_MS} ms (${r.missingButStored} of them were stored at that node when asked afterwards: the feed did not report them; ${r.feedsClosed} feeds closed during the run)`,
      );
    }
  }
  return problems;
}

export function checkTargets(result: BenchResult): TargetResult[] {
  const out: TargetResult[] = [];
  const at = (rate: number) => result.ours.latency.find((r) => r.rate === rate);
  const r1k = at(1000);
  if (r1k !== undefined) {
    out.push({ name: 'replication p50 at 1,000/s', target: '≤ 1 ms', measured: `${r1k.replication.p50} ms`, met: r1k.replication.p50 <= 1 });
    out.push({ name: 'replication p99 at 1,000/s', target: '≤ 5 ms', measured: `${r1k.replication.p99} ms`, met: r1k.replication.p99 <= 5 });
  }
  const r10k = at(10000);
  if (r10k !== undefined) out.push({ name: 'replication p99 at 10,000/s', target: '≤ 25 ms', measured: `${r10k.replication.p99} ms`, met: r10k.replication.p99 <= 25 });
  const one = result.ours.throughput.find((t) => t.label.endsWith('one node') && t.label.startsWith('single'));
  const koa = result.ours.koaCeiling;
  if (one !== undefined && koa !== undefined) {
    const ratio = one.requestsPerSecond / koa.requestsPerSecond;
    out.push({ name: 'single-increment throughput vs koa ceiling', target: '≥ 80%', measured: `${Math.round(ratio * 100)}%`, met: ratio >= 0.8 });
  }
  const limiterOff = result.ours.throughput.find((t) => t.label === LIMITER_OFF_LABEL);
  const limiterOn = result.ours.throughput.find((t) => t.label === LIMITER_ON_LABEL);
  if (limiterOff !== undefined && limiterOn !== undefined) {
    const ratio = limiterOn.requestsPerSecond / limiterOff.requestsPerSecond;
    out.push({ name: 'anonymous single increments, rate limiter on vs off', target: '≥ 90%', measured: `${Math.round(ratio * 100)}%`, met: ratio >= 0.9 && limiterOn.non2xx === 0 });
  }
  const batch = result.ours.throughput.find((t) => t.label.startsWith('POST /api/views'));
  if (batch !== undefined) out.push({ name: 'batch endpoint', target: '≥ 100,000 increments/s', measured: `${batch.incrementsPerSecond.toLocaleString('en-US')}/s`, met: batch.incrementsPerSecond >= 100_000 });
  const memory = result.ours.memory;
  if (memory !== undefined) out.push({ name: `RSS at ${memory.pages.toLocaleString('en-US')} vs ${MEMORY_FIRST_PAGES.toLocaleString('en-US')} pages`, target: 'flat (≤ 1.5×)', measured: `${memory.growth}×`, met: memory.growth <= 1.5 });
  const startup = result.ours.startup;
  if (startup !== undefined) {
    const pages = startup.pages.toLocaleString('en-US');
    out.push({ name: `node start at ${pages} pages (spawn → listening)`, target: '< 1 s', measured: `${startup.startFullMs} ms`, met: startup.startFullMs < 1000 });
    // The slowest scrape counts, the first after a start included (it was the slow one).
    out.push({ name: `GET /metrics at ${pages} pages (every scrape)`, target: '< 50 ms', measured: `${startup.scrapeMaxMs} ms at most (first after a start ${startup.scrapeFirstMs} ms, p50 ${startup.scrapeP50Ms} ms)`, met: startup.scrapeMaxMs < 50 });
  }
  const analytics = result.analytics;
  if (analytics !== undefined) {
    out.push({ name: 'single increments, analytics on vs off', target: '≥ 85%', measured: `${Math.round(analytics.singleRatio * 100)}%`, met: analytics.singleRatio >= 0.85 && analytics.singleOn.non2xx === 0 });
    out.push({ name: 'batch endpoint, analytics on', target: '≥ 100,000 views/s', measured: `${analytics.batchOn.incrementsPerSecond.toLocaleString('en-US')}/s`, met: analytics.batchOn.incrementsPerSecond >= 100_000 && analytics.batchOn.non2xx === 0 });
    const d = analytics.dashboard;
    for (const q of d.queries) {
      out.push({ name: `${q.name} at ${d.pages.toLocaleString('en-US')} pages, ${d.views.toLocaleString('en-US')} views`, target: 'p99 < 100 ms', measured: `p99 ${q.ms.p99} ms`, met: q.ms.p99 < 100 });
    }
  }
  if (result.ours.loss !== undefined) out.push({ name: 'acknowledged increments lost', target: '0', measured: String(Math.max(0, ...result.ours.loss.lostPerNode)), met: result.ours.loss.pagesWrong === 0 });
  return out;
}
