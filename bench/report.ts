/** The markdown table printed on stdout (and pasted into the README's Benchmarks section). */
import { STAGE_ORDER, type Breakdown } from './breakdown.js';
import type { BenchResult, RateResult } from './result.js';

const MB = 1024 * 1024;

function n(value: number): string {
  return Number.isFinite(value) ? value.toLocaleString('en-US') : '–';
}

function ms(value: number): string {
  if (!Number.isFinite(value)) return '–';
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MB).toFixed(0)} MB` : '–';
}

function cpu(seconds: number | undefined): string {
  return seconds === undefined || !Number.isFinite(seconds) ? '–' : seconds.toFixed(3);
}

function latencyRow(system: string, r: RateResult): string {
  return `| ${system} | ${n(r.rate)} | ${n(r.achievedRate)} | ${ms(r.ack.p50)} / ${ms(r.ack.p99)} | **${ms(r.replication.p50)}** | ${ms(r.replication.p95)} | **${ms(r.replication.p99)}** | ${ms(r.replication.max)} | ${ms(r.endToEnd.p99)} | ${n(r.sampleObservations)} (${r.samplesMissing} missing, ${r.observedBeforeAck} before ack) | ${r.bytesPerIncrement} | ${cpu(r.cpuPer1000)} | ${r.loadAtStart ?? '–'} |`;
}

export function renderReport(result: BenchResult): string {
  const m = result.machine;
  const lines: string[] = [];
  lines.push(
    `Measured ${result.startedAt.slice(0, 10)} on ${m.cpus} × ${m.cpuModel}, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, load average ${m.loadAverageAtStart.join(' / ')} at start and ${result.loadAverageAtEnd.join(' / ')} at end; Node ${m.node}; commit ${m.gitCommit.slice(0, 10)}${m.gitDirty ? ' (dirty tree)' : ''}; ${result.knobs.nodes} nodes${result.knobs.clusterAnalytics === 0 ? " (analytics off)" : ""}${result.knobs.clusterCoalesce === 0 ? ' (every delta sent alone)' : ''}${result.knobs.coalesceWindowMs > 0 ? ` (a ${result.knobs.coalesceWindowMs} ms coalescing window)` : ''}; ${result.knobs.quick ? '`--quick`' : 'full run'}, ${(result.elapsedMs / 1000).toFixed(0)} s.`,
    '',
  );

  if (result.ours.latency.length > 0 || result.naive !== undefined) {
    lines.push('**Replication latency** (open loop; ms from the writer\'s HTTP acknowledgement until each other node\'s live feed reports the sampled increment)', '');
    lines.push('| system | rate /s | acked /s | ack p50 / p99 | repl p50 | p95 | p99 | max | intended→feed p99 | observations | wire bytes / incr | node CPU s / 1,000 incr | load |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of result.ours.latency) lines.push(latencyRow('G-Counter', r));
    for (const r of result.naive?.latency ?? []) lines.push(latencyRow('naive', r));
    lines.push('');
  }

  renderBreakdown(lines, result.ours.breakdown, result.naive?.breakdown);

  if (result.ours.throughput.length > 0) {
    const koa = result.ours.koaCeiling;
    lines.push(`**Throughput** (closed loop, autocannon, ${result.knobs.connections} keep-alive connections, ${result.knobs.throughputDurationMs / 1000} s each)`, '');
    lines.push('| run | requests/s | increments/s | p50 ms | p99 ms | of koa ceiling | errors |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    if (koa !== undefined) lines.push(`| ${koa.label} | ${n(koa.requestsPerSecond)} | – | ${ms(koa.latencyP50Ms)} | ${ms(koa.latencyP99Ms)} | 100% | ${koa.non2xx + koa.errors} |`);
    for (const t of result.ours.throughput) {
      const ratio = koa !== undefined ? `${Math.round((t.requestsPerSecond / koa.requestsPerSecond) * 100)}%` : '–';
      lines.push(`| ${t.label} | ${n(t.requestsPerSecond)} | ${n(t.incrementsPerSecond)} | ${ms(t.latencyP50Ms)} | ${ms(t.latencyP99Ms)} | ${t.label.startsWith('POST') ? '–' : ratio} | ${t.non2xx + t.errors} |`);
    }
    lines.push('');
  }

  const p = result.ours.partition;
  const loss = result.ours.loss;
  const mem = result.ours.memory;
  lines.push('**Convergence, loss and cost**', '');
  lines.push('| measure | value |');
  lines.push('|---|---|');
  if (p !== undefined) lines.push(`| partition: ${p.stoppedNode} SIGSTOPped ${p.partitionMs / 1000} s while the others took ${n(p.load.acked)} increments | all digests equal **${ms(p.convergeMs)} ms** after SIGCONT |`);
  if (loss !== undefined) lines.push(`| G-Counter: acknowledged vs final total, every node | ${n(loss.acked)} acked, lost ${loss.lostPerNode.join(' / ')}, ${loss.pagesWrong} wrong pages — **${Math.max(0, ...loss.lostPerNode) === 0 && loss.pagesWrong === 0 ? 'zero lost' : 'LOST INCREMENTS'}** |`);
  const nl = result.naive?.loss;
  if (nl !== undefined) lines.push(`| naive: acknowledged vs final total, per node | ${n(nl.acked)} acked, lost ${nl.lostPerNode.map(n).join(' / ')} (**${(nl.lostFraction * 100).toFixed(2)}%**), ${n(nl.pagesDivergent)} pages differ between nodes |`);
  if (result.ours.peakRssBytes !== undefined) lines.push(`| peak RSS per node (VmHWM) | ${result.ours.peakRssBytes.map(mb).join(' / ')} |`);
  if (result.ours.databaseBytes !== undefined && result.ours.slots !== undefined) {
    lines.push(`| database after the run (file + WAL) / slots | ${result.ours.databaseBytes.map(mb).join(' / ')} for ${result.ours.slots.map(n).join(' / ')} slots |`);
  }
  if (mem !== undefined) {
    lines.push(`| RSS at 1,000 → ${n(mem.pages)} pages | ${mem.rssAtFirstBytes.map(mb).join(' / ')} → ${mem.rssAtAllBytes.map(mb).join(' / ')} (×${mem.growth} at most) |`);
    lines.push(`| V8 heap used at 1,000 → ${n(mem.pages)} pages | ${mem.heapAtFirstBytes.map(mb).join(' / ')} → ${mem.heapAtAllBytes.map(mb).join(' / ')} |`);
    lines.push(`| database bytes per slot at ${n(mem.pages)} pages (file + WAL) | ${mem.bytesPerSlot} B (${mem.slots.map(n).join(' / ')} slots) |`);
  }
  for (const f of result.ours.pressure ?? []) {
    const extra = Object.entries(f.extra ?? {}).map(([k, v]) => `${k} ${n(v)}`).join(', ');
    lines.push(`| pressure: ${f.name} | peak RSS **${mb(f.peakRssBytes)}**, slowest /healthz ${ms(f.slowestProbeMs)} ms, ${n(f.acked)} views acked / ${n(f.counted)} counted, ${n(f.refused)} refused (503), ${n(f.failed)} failed, ${n(f.elapsedMs)} ms${extra === '' ? '' : `; ${extra}`} |`);
  }
  const st = result.ours.startup;
  if (st !== undefined) {
    lines.push(`| node start, spawn → listening: empty database → ${n(st.pages)} pages | ${ms(st.startEmptyMs)} → **${ms(st.startFullMs)} ms** (slowest ${ms(st.startFullMaxMs)} ms; database built in ${n(st.buildMs)} ms) |`);
    lines.push(`| node start at ${n(st.pages)} pages after a kill -9 (digest row unknown) | ${ms(st.startUnknownDigestMs)} ms to listening; digest recounted in the background by ${ms(st.recountDoneMs)} ms |`);
    lines.push(`| GET /metrics at ${n(st.pages)} pages: first after a start / p50 of the rest / max of all | ${ms(st.scrapeFirstMs)} / ${ms(st.scrapeP50Ms)} / **${ms(st.scrapeMaxMs)} ms** (${n(st.metricsBytes)} B; empty database: ${ms(st.emptyScrapeFirstMs)} / ${ms(st.emptyScrapeP50Ms)} / ${ms(st.emptyScrapeMaxMs)} ms) |`);
    lines.push(`| GET /api/cluster at ${n(st.pages)} pages: first / p50 / max | ${ms(st.clusterFirstMs)} / ${ms(st.clusterP50Ms)} / ${ms(st.clusterMaxMs)} ms (${n(st.clusterBytes)} B) |`);
  }
  lines.push('');

  if (result.yjs !== undefined && result.yjs.length > 0) {
    lines.push(`**Yjs \`Y.Map\` counter** (3 replicas, ${result.knobs.yjsPages} pages, \`map[page] = value + 1\`): state grows with increments; a G-Counter slot does not`, '');
    lines.push('| increments | Y.encodeStateAsUpdate bytes | bytes / increment | update bytes on the wire / increment |');
    lines.push('|---:|---:|---:|---:|');
    for (const y of result.yjs) lines.push(`| ${n(y.increments)} | ${n(y.stateBytes)} | ${y.bytesPerIncrement} | ${y.wireBytesPerIncrement} |`);
    if (mem !== undefined) lines.push('', `G-Counter: ${mem.bytesPerSlot} database bytes per slot, whatever the count.`);
    lines.push('');
  }

  const restart = result.restart;
  if (restart !== undefined) {
    lines.push(`**Restart and restore** (one node under run.sh with Litestream, ${n(restart.pages)} pages, ${restart.runs} runs; ms, p50 / max)`, '');
    lines.push('| measure | p50 | max |');
    lines.push('|---|---:|---:|');
    const row = (name: string, s: { p50: number; max: number }): void => void lines.push(`| ${name} | ${n(s.p50)} | ${n(s.max)} |`);
    row('restart to serving (run.sh on an existing database)', restart.restartToServingMs);
    row('Litestream hand-over to serving (the node\'s own start)', restart.handoverToServingMs);
    row('restore to serving (data folder lost)', restart.restoreToServingMs);
    row('restore to converged with a peer', restart.restoreToConvergedMs);
    lines.push('');
  }

  const mac = result.mac;
  if (mac !== undefined) {
    const latency = result.ours.latency.find((r) => r.rate === 1000) ?? result.ours.latency[0];
    lines.push(`**Per-frame authentication** (one live delta of one slot, both ends' frame work, ${n(mac.frames)} frames interleaved; µs)`, '');
    lines.push('| | p50 | p99 | bytes per increment |');
    lines.push('|---|---:|---:|---:|');
    lines.push(`| without MAC (encode + decode) | ${n(mac.withoutMacUs.p50)} | ${n(mac.withoutMacUs.p99)} | ${mac.bytesPerIncrementWithout} |`);
    lines.push(`| with MAC (encode + seal + verify + decode) | ${n(mac.withMacUs.p50)} | ${n(mac.withMacUs.p99)} | ${mac.bytesPerIncrementWith} |`);
    if (latency !== undefined) {
      const extraMs = (mac.withMacUs.p50 - mac.withoutMacUs.p50) / 1000;
      lines.push(
        `| end-to-end replication at ${n(latency.rate)}/s, ms (with MAC, measured; without = minus ${n(extraMs)} ms) | ${n(latency.replication.p50)} → ${n(Math.max(0, latency.replication.p50 - extraMs))} | ${n(latency.replication.p99)} | ${n(latency.bytesPerIncrement)} (with MAC) |`,
      );
    }
    const e2e = mac.endToEnd;
    if (e2e !== undefined) {
      lines.push('');
      lines.push(`End to end, two real 2-node clusters at ${n(e2e.rate)}/s in this run (medians of ${e2e.runs.length / 2} runs each, alternated):`, '');
      lines.push('| | replication p50 ms | p99 ms | peer bytes per increment |');
      lines.push('|---|---:|---:|---:|');
      lines.push(`| MAC on | ${n(e2e.withMac.p50Ms)} | ${n(e2e.withMac.p99Ms)} | ${n(e2e.withMac.bytesPerIncrement)} |`);
      lines.push(`| MAC off (bench-only node) | ${n(e2e.withoutMac.p50Ms)} | ${n(e2e.withoutMac.p99Ms)} | ${n(e2e.withoutMac.bytesPerIncrement)} |`);
    }
    lines.push('');
  }

  const scale = result.scale;
  if (scale !== undefined && scale.simulated.length > 0) {
    const first = scale.simulated[0]!;
    lines.push(`**Scale, simulated** (the real replication code on virtual time; ${n(first.latencyMs)} ms links, ${n(first.lossRate * 100)}% loss as retransmission; per node)`, '');
    lines.push('| nodes | at rest B/s | at rest frames/s (by type) | bytes / frames per increment | every node has it p50 / p99 ms | joiner receives | copies | degree | wall s |');
    lines.push('|---:|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const p of scale.simulated) {
      const types = Object.entries(p.rest.framesByType)
        .map(([type, rate]) => `${type} ${n(rate)}`)
        .join(', ');
      lines.push(
        `| ${n(p.nodes)} | ${n(p.rest.bytesPerNodePerSecond)} | ${n(p.rest.framesPerNodePerSecond)} (${types}) | ${n(p.increment.bytesPerNode)} / ${n(p.increment.framesPerNode)} | ${ms(p.increment.everyNodeMs.p50)} / ${ms(p.increment.everyNodeMs.p99)}${p.increment.missing > 0 ? ` (${p.increment.missing} never)` : ''} | ${n(p.join.bytesReceived)} B | ${n(p.join.copies)} | ${n(p.degree.mean)} | ${n(Math.round(p.wallMs / 100) / 10)} |`,
      );
    }
    lines.push('');
  }

  const an = result.analytics;
  if (an !== undefined) {
    lines.push(`**Views over time and unique visitors** (lone nodes with \`ANALYTICS\` on and off side by side, ${an.rounds} interleaved turns of ${n(Math.round(result.knobs.analyticsDurationMs / an.rounds))} ms each per side and run)`, '');
    lines.push('| run | requests/s | views/s | p50 ms | p99 ms | node CPU ms a request | errors |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const t of [an.singleOn, an.singleOff, an.batchOn, an.batchOff]) lines.push(`| ${t.label} | ${n(t.requestsPerSecond)} | ${n(t.incrementsPerSecond)} | ${ms(t.latencyP50Ms)} | ${ms(t.latencyP99Ms)} | ${t.nodeCpuMsPerRequest ?? '–'} | ${t.non2xx + t.errors} |`);
    lines.push('', `Single increments with analytics on: **${Math.round(an.singleRatio * 100)}%** of off (node CPU a request: off is ${Math.round(an.singleCpuRatio * 100)}% of on).`, '');
    const st = an.storage;
    lines.push('| measure | value |');
    lines.push('|---|---|');
    lines.push(`| bytes per page per day (file + WAL after checkpoint; ${n(st.pages)} pages, ${n(st.viewsPerPageDay)} views and ${n(st.visitorsPerPageDay)} visitors a page-day) | **${n(st.bytesPerPageDay)} B** (first day, the page's own rows included: ${n(st.firstDayBytesPerPage)} B); rows a page-day: ${st.hourRowsPerPageDay} hour, ${st.dayRowsPerPageDay} day, ${st.registerRowsPerPageDay} register |`);
    const d = an.dashboard;
    lines.push(`| dashboard database: ${n(d.pages)} pages, ${n(d.views)} views over ${d.days} days | seeded in ${n(d.seedMs)} ms (${d.seedMethod}), ${mb(d.databaseBytes)}; node start ${ms(d.startMs)} ms |`);
    for (const q of d.queries) lines.push(`| ${q.name} (${n(q.ms.count)} asked, ${n(q.bytes)} B) | p50 ${ms(q.ms.p50)} ms, **p99 ${ms(q.ms.p99)} ms**, max ${ms(q.ms.max)} ms |`);
    lines.push('');
  }

  if (result.targets.length > 0) {
    lines.push('**Targets**', '');
    lines.push('| target | wanted | measured | |');
    lines.push('|---|---|---|---|');
    for (const t of result.targets) lines.push(`| ${t.name} | ${t.target} | ${t.measured} | ${t.met ? 'met' : '**missed**'} |`);
    lines.push('');
  }
  for (const problem of result.problems) lines.push(`PROBLEM: ${problem}`);
  return `${lines.join('\n')}\n`;
}

/** Per rate: each stage's p50 / p95 / p99 for both systems, then each node's event-loop delay and GC. */
function renderBreakdown(lines: string[], ours: Breakdown | undefined, naive: Breakdown | undefined): void {
  if (ours === undefined && naive === undefined) return;
  const rates = [...new Set([...(ours?.rates ?? []), ...(naive?.rates ?? [])].map((r) => r.rate))];
  lines.push('**Latency breakdown** (sampled increments, ms per stage p50 / p95 / p99; CLOCK_MONOTONIC shared by all processes, so cross-process stages are one-way)', '');
  for (const rate of rates) {
    const o = ours?.rates.find((r) => r.rate === rate);
    const v = naive?.rates.find((r) => r.rate === rate);
    lines.push(`${n(rate)}/s (${o?.samples ?? 0} G-Counter samples, ${v?.samples ?? 0} naive):`, '');
    lines.push('| stage | G-Counter | naive |');
    lines.push('|---|---:|---:|');
    const cell = (stage: string, r: typeof o): string => {
      const f = r?.stages.find((x) => x.stage === stage);
      return f === undefined ? '' : `${ms(f.p50)} / ${ms(f.p95)} / ${ms(f.p99)}`;
    };
    for (const stage of STAGE_ORDER) {
      const a = cell(stage, o);
      const b = cell(stage, v);
      if (a !== '' || b !== '') lines.push(`| ${stage} | ${a || '–'} | ${b || '–'} |`);
    }
    lines.push('');
    lines.push('| node | loop delay p50 / worst-window p99 / max | GC pauses (major) | GC total / max ms |');
    lines.push('|---|---:|---:|---:|');
    for (const node of [...(o?.nodes ?? []), ...(v?.nodes ?? [])]) {
      lines.push(`| ${node.node} | ${ms(node.loopP50)} / ${ms(node.loopP99)} / ${ms(node.loopMax)} | ${node.gcCount} (${node.gcMajor}) | ${ms(node.gcTotalMs)} / ${ms(node.gcMaxMs)} |`);
    }
    lines.push('');
  }
}
