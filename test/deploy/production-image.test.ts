/**
 * What the Dockerfile's stages produce, without a Docker engine: the test reads the Dockerfile,
 * lays out the final stage's /app in a temp folder from exactly the paths its COPY lines name
 * (`npm ci --omit=dev` for the deps stage, the compiled dist/ for the build stage, files from the
 * build context), then starts that copy's run.sh with Litestream and checks it serves and backs up.
 * Started as root, it also checks the drop to RUN_AS_USER that the image's CMD goes through.
 *
 * One substitution: `npm ci` runs with --ignore-scripts and better-sqlite3's native addon is copied
 * from this checkout, because compiling it takes ~85 s here (the image's deps stage compiles it,
 * or fetches a prebuilt one, with the toolchain it installs).
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from '../helpers/build.js';
import { TempDirs } from '../helpers/temp-dir.js';
import { RunShProcesses, countViews, listFiles, pageCount, stopGracefully, waitForBackupToCatchUp } from './run-sh.js';

const execFileAsync = promisify(execFile);
/** npm ci from the local cache takes seconds; a cold cache fetches ~100 packages. */
const NPM_CI_TIMEOUT_MS = 150_000;
const APP_DIR = '/app';

interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: ReadonlyArray<{ readonly op: string; readonly args: string }>;
}

/** Stages of a Dockerfile: instructions with line continuations joined, comments dropped. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Array<{ name: string; from: string; instructions: Array<{ op: string; args: string }> }> = [];
  for (const line of lines) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const [, from = '', name = String(stages.length)] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      stages.push({ name, from, instructions: [] });
    } else if (stages.length === 0 && op.toUpperCase() === 'ARG') {
      const [key = '', value = ''] = rest.split('=');
      args[key] = value;
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args: rest });
    }
  }
  return { args, stages };
}

/** The RUN, ENV, COPY … of a stage and the stages it is built FROM, base first. */
function lineage(stages: readonly Stage[], stage: Stage): Stage[] {
  const parent = stages.find((s) => s.name === stage.from);
  return parent === undefined ? [stage] : [...lineage(stages, parent), stage];
}

function parseCopy(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop() as string;
  return { ...(from !== undefined ? { from } : {}), sources: words, dest };
}

describe('the production image (Dockerfile stages, run without Docker)', () => {
  const dirs = new TempDirs();
  const runs = new RunShProcesses();
  const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const final = dockerfile.stages.at(-1) as Stage;
  const finalLineage = lineage(dockerfile.stages, final);
  let app = '';

  beforeAll(async () => {
    ensureBuilt();
    const root = await dirs.create('image-');
    // Readable by every user, as an image's /app is (mkdtemp makes it private).
    chmodSync(root, 0o755);
    app = join(root, 'app');

    // The deps stage: a production install from the lock file alone.
    const deps = join(root, 'deps');
    mkdirSync(deps);
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(ROOT, file), join(deps, file));
    await execFileAsync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: deps,
      timeout: NPM_CI_TIMEOUT_MS,
      env: { ...process.env, NODE_ENV: 'production' },
    });
    const addon = join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
    mkdirSync(join(deps, addon, '..'), { recursive: true });
    cpSync(join(ROOT, addon), join(deps, addon));

    // The final stage's COPY lines, applied to a folder standing for /app.
    const stageRoots: Record<string, string> = { deps, build: ROOT };
    mkdirSync(app);
    for (const { op, args } of final.instructions) {
      if (op !== 'COPY') continue;
      const copy = parseCopy(args);
      for (const source of copy.sources) {
        const from = copy.from === undefined ? join(ROOT, source) : join(stageRoots[copy.from] ?? '', posix.relative(APP_DIR, source));
        const dest = copy.dest.endsWith('/') ? join(app, posix.relative(APP_DIR, posix.join(APP_DIR, copy.dest)), posix.basename(source)) : join(app, posix.relative(APP_DIR, posix.join(APP_DIR, copy.dest)));
        expect(existsSync(from), `COPY source ${source} (from ${copy.from ?? 'the build context'})`).toBe(true);
        cpSync(from, dest, { recursive: true });
      }
    }
  }, NPM_CI_TIMEOUT_MS + 30_000);

  afterEach(() => runs.killAll());
  afterAll(async () => {
    await runs.killAll();
    await dirs.removeAll();
  });

  it('is multi-stage on Node 24 LTS slim: a production-only install, a build with the dev tools, an unprivileged runtime', () => {
    expect(dockerfile.args.NODE_VERSION).toBe('24');
    // better-sqlite3 compiled against the pinned headers (see the Dockerfile and .ci/run for why).
    expect(dockerfile.args.NODE_HEADERS_VERSION).toBe('24.18.1');
    expect(finalLineage[0]?.from).toBe('node:${NODE_VERSION}-slim');
    const runs = (stage: string): string =>
      lineage(dockerfile.stages, dockerfile.stages.find((s) => s.name === stage) as Stage)
        .flatMap((s) => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args))
        .join('\n');
    expect(runs('deps')).toContain('npm ci --omit=dev');
    expect(runs('deps')).toMatch(/node@\$\{NODE_HEADERS_VERSION\}[\s\S]*npm ci --omit=dev[^\n]*--build-from-source --nodedir=/);
    expect(runs('build')).toMatch(/npm ci[^\n]*\n?[\s\S]*npm run build/);
    const copies = final.instructions.filter((i) => i.op === 'COPY').map((i) => parseCopy(i.args));
    expect(copies.flatMap((c) => c.sources)).toEqual(expect.arrayContaining(['/app/node_modules', '/app/dist', 'package.json', 'litestream.yml', 'run.sh', 'migrations']));
    // The final image gets no compiler: its lineage installs only CA certificates.
    expect(finalLineage.flatMap((s) => s.instructions).filter((i) => i.op === 'RUN' && /g\+\+|make/.test(i.args))).toEqual([]);
    const env = finalLineage.flatMap((s) => s.instructions).filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toContain('DATABASE_PATH=/data/counters.db');
    expect(env).toContain('RUN_AS_USER=node');
    expect(final.instructions.find((i) => i.op === 'CMD')?.args).toBe('["./run.sh"]');
    // Nothing the build copies from the context is ignored.
    const ignored = new Set(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')));
    const contextSources = dockerfile.stages.flatMap((s) => s.instructions.filter((i) => i.op === 'COPY').map((i) => parseCopy(i.args))).filter((c) => c.from === undefined).flatMap((c) => c.sources);
    for (const source of contextSources) expect(ignored.has(source.split('/')[0] as string), `${source} is in .dockerignore`).toBe(false);
  });

  it('has no dev dependencies, and the Litestream binary comes with the production install', () => {
    expect(existsSync(join(app, 'node_modules', 'better-sqlite3'))).toBe(true);
    for (const devOnly of ['typescript', 'vitest', 'eslint', 'fast-check']) expect(existsSync(join(app, 'node_modules', devOnly)), devOnly).toBe(false);
    const binary = join(app, 'node_modules', '@flydotio', `litestream-${process.platform}-${process.arch}`, 'litestream');
    expect(statSync(binary).mode & 0o111).not.toBe(0);
    expect(existsSync(join(app, 'dist', 'src', 'main.js'))).toBe(true);
  });

  it('run.sh in the image layout restores nothing, serves, backs up with Litestream, and its recovery commands work without the database', async () => {
    const dir = await dirs.create('image-run-');
    const databasePath = join(dir, 'data', 'counters.db');
    const replicaRoot = join(dir, 'replica');
    const run = await runs.start(
      { DATABASE_PATH: databasePath, NODE_NAME: 'image', REPLICA_URL: `file://${replicaRoot}`, LITESTREAM_SYNC_INTERVAL: '100ms' },
      join(app, 'run.sh'),
    );
    expect(run.output()).toContain('run.sh: no backup; starting empty, will bootstrap from peers');
    // The node is the image's, not this checkout's.
    expect(run.output()).not.toContain(ROOT);
    await countViews(run.url, { home: 4 });
    expect(await pageCount(run.url, 'home')).toBe(4);
    await waitForBackupToCatchUp(databasePath, `file://${replicaRoot}/image`, dir);
    await stopGracefully(run);

    // The README's recovery commands, in the image layout, with the database gone.
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    const env = { DATABASE_PATH: databasePath, NODE_NAME: 'image', REPLICA_URL: `file://${replicaRoot}` };
    const generations = await runs.runToExit(env, ['litestream', 'generations'], join(app, 'run.sh'));
    expect(generations.code, generations.output).toBe(0);
    expect(generations.output).toMatch(/^file\s+[0-9a-f]{16}\s/m);
    const report = await runs.runToExit(env, ['recover'], join(app, 'run.sh'));
    expect(report.code, report.output).toBe(0);
    expect(report.output).toContain('recover: backup image: 4 views on 1 pages; the union adds 0');
    expect(report.output).not.toContain(ROOT);
  });

  it.skipIf(process.getuid?.() !== 0)('started as root (as the image is), run.sh hands the data folder to RUN_AS_USER and runs everything as that user', async () => {
    const dir = await dirs.create('image-root-');
    chmodSync(dir, 0o755);
    const dataDir = join(dir, 'data');
    const replicaRoot = join(dir, 'replica');
    mkdirSync(replicaRoot);
    const nobody = Number((await execFileAsync('id', ['-u', 'nobody'])).stdout.trim());
    chownSync(replicaRoot, nobody, nobody);

    const run = await runs.start(
      { DATABASE_PATH: join(dataDir, 'counters.db'), NODE_NAME: 'image', REPLICA_URL: `file://${replicaRoot}`, RUN_AS_USER: 'nobody' },
      join(app, 'run.sh'),
    );
    expect(run.output()).toContain(`run.sh: dropping root: continuing as nobody (owner of ${dataDir})`);
    const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    expect(uidOf(run.pid)).toBe(nobody); // Litestream
    expect(uidOf(run.nodePid)).toBe(nobody);
    await countViews(run.url, { home: 1 });
    expect(statSync(join(dataDir, 'counters.db')).uid).toBe(nobody);
    await stopGracefully(run);
    expect(listFiles(join(replicaRoot, 'image')).length).toBeGreaterThan(0);
  });
});
