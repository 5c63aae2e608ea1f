/**
 * `npm run bench`: replication latency and throughput of real node processes on loopback, side
 * by side with the naive scheme and a Yjs counter. Knobs in bench/knobs.ts (flags or env); one
 * JSON result per run under bench/results/ (its shape in bench/result.ts), a markdown table on
 * stdout. Each phase is a file in bench/phases/; what a run is judged by is in bench/checks.ts.
 * See bench/README.md.
 *
 * Every loop is bounded in count and time; only loopback addresses are used; every process the
 * benchmark starts is stopped on the way out, also on error or Ctrl-C.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkTargets, findProblems } from './checks.js';
import { ROOT } from './cluster.js';
import { KnobError, parseKnobs, usage, type Knobs } from './knobs.js';
import { currentLoad, machineInfo } from './machine.js';
import { runClusterPhases } from './phases/cluster-phases.js';
import { runAnalytics, type AnalyticsResult } from './phases/analytics.js';
import { runMacBench, runMacEndToEnd, type MacResult } from './phases/mac.js';
import { runMemory } from './phases/memory.js';
import { runNaive } from './phases/naive.js';
import { runPressure } from './phases/pressure.js';
import { runStartup } from './phases/startup.js';
import { runRestartBench, type RestartResult } from './phases/restart.js';
import { runScale, type ScaleResult } from './phases/scale.js';
import { runSessionsBench, type SessionsResult } from './phases/sessions.js';
import { ProcessSet } from './processes.js';
import { log } from './progress.js';
import { renderReport } from './report.js';
import type { BenchResult } from './result.js';
import { runYjsBaseline, type YjsPoint } from './yjs-baseline.js';

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  let knobs: Knobs;
  try {
    knobs = parseKnobs(argv, process.env);
  } catch (error) {
    if (!(error instanceof KnobError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${usage()}\n`);
    return 2;
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = machineInfo(ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'dsqlite-bench-'));
  if (knobs.cpuProf !== '') mkdirSync(resolve(knobs.cpuProf), { recursive: true });
  const processes = new ProcessSet();
  const onSignal = (): void => {
    processes.killAllNow();
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const phases = new Set(knobs.phases);
  let ours: BenchResult['ours'] = { latency: [], throughput: [] };
  let naive: BenchResult['naive'];
  let yjs: YjsPoint[] | undefined;
  let restart: RestartResult | undefined;
  let sessions: SessionsResult | undefined;
  let mac: MacResult | undefined;
  let scale: ScaleResult | undefined;
  let analytics: AnalyticsResult | undefined;

  try {
    if (phases.has('latency') || phases.has('throughput') || phases.has('partition')) {
      ours = await runClusterPhases(knobs, phases, processes, dir, knobs.cpuProf === '' ? '' : resolve(knobs.cpuProf));
    }
    if (phases.has('memory')) ours.memory = await runMemory(knobs, processes, dir);
    if (phases.has('startup')) ours.startup = await runStartup(knobs, processes, dir);
    if (phases.has('pressure')) ours.pressure = await runPressure(knobs, processes, dir);
    if (phases.has('naive')) naive = await runNaive(knobs, processes, dir, knobs.cpuProf === '' ? '' : resolve(knobs.cpuProf));
    if (phases.has('yjs')) {
      log(`yjs: Y.Map counter at ${knobs.yjsIncrements.join(', ')} increments`);
      yjs = runYjsBaseline(knobs.yjsIncrements, knobs.yjsPages);
    }
    if (phases.has('mac')) {
      log('mac: one delta frame encoded and decoded, without and with its session MAC');
      const frames = runMacBench(knobs.quick ? 20_000 : 100_000);
      log('mac: end to end, real 2-node clusters with the MAC on and off');
      mac = { ...frames, endToEnd: await runMacEndToEnd(knobs, processes, dir) };
    }
    if (phases.has('scale')) scale = await runScale(knobs);
    if (phases.has('restart')) {
      log('restart: run.sh restart and restore times under Litestream');
      restart = await runRestartBench({ runs: knobs.quick ? 2 : 5, pages: 200 });
    }
    if (phases.has('sessions')) {
      log('sessions: read latency with and without a Counter-Session token, catch-up after restoring a large backup');
      sessions = await runSessionsBench({ readsPerSecond: 1_000, durationMs: knobs.quick ? 3_000 : 10_000, pages: knobs.quick ? 20_000 : 100_000 });
    }
    if (phases.has('analytics')) analytics = await runAnalytics(knobs, processes, dir);
  } finally {
    await processes.stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  }

  const problems = findProblems(ours);
  const partial: BenchResult = {
    startedAt,
    finishedAt: new Date().toISOString(),
    elapsedMs: Math.round(performance.now() - started),
    machine,
    loadAverageAtEnd: currentLoad(),
    knobs,
    ours,
    ...(naive !== undefined ? { naive } : {}),
    ...(yjs !== undefined ? { yjs } : {}),
    ...(restart !== undefined ? { restart } : {}),
    ...(sessions !== undefined ? { sessions } : {}),
    ...(mac !== undefined ? { mac } : {}),
    ...(scale !== undefined ? { scale } : {}),
    ...(analytics !== undefined ? { analytics } : {}),
    targets: [],
    problems,
  };
  const result: BenchResult = { ...partial, targets: checkTargets(partial) };
  const outDir = resolve(ROOT, knobs.out);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${startedAt.replaceAll(':', '-').replace(/\.\d+Z$/, 'Z')}${knobs.quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(renderReport(result));
  process.stdout.write(`\nResult: ${file}\n`);
  return problems.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
