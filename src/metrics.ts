/**
 * Prometheus metrics, one registry per node (never prom-client's global default: several nodes
 * may share a process in tests). Other parts add their own metrics to `metrics.registry`
 * (`new Counter({ registers: [metrics.registry], … })`). Knows no store: it watches anything of
 * the `MeteredStore` shape, which the Store interface satisfies (the composition root passes it).
 */
import perfHooks, { type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The one prefix of every metric the node exports (its own, the process's, replication's). */
export const METRIC_PREFIX = 'dsqlite_';

/** Default prom-client gauges whose names end in `_total` (see createMetrics). */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Request durations in seconds: from sub-millisecond reads to slow commits. */
export const HTTP_DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Pages raised per commit. */
export const COMMIT_PAGES_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 500, 1000, 5000];

/** The reasons `store_writes_blocked` reports (the store's WriteBlock codes). */
const WRITE_BLOCK_REASONS = ['disk_full', 'database_gone'] as const;

/** What the metrics read from a store: its sizes, its local seq, and its commit and merge events. */
export interface MeteredStore {
  stats(): { readonly pages: number; readonly slots: number; readonly replicas: number; readonly bytes: number };
  localSeq(): number;
  /** Why writes are refused now (`disk_full`, `database_gone`), or undefined. */
  writeBlocked?(): { readonly code: string } | undefined;
  /** After each local commit, with the slots it raised. Returns an unsubscribe function. */
  onCommit(listener: (commit: { readonly slots: readonly unknown[] }) => void): () => void;
  /** After any commit that raised page totals. Returns an unsubscribe function. */
  onChange(listener: (changed: readonly unknown[], origin: 'local' | 'merge') => void): () => void;
}

/** One route and method's children of the request metrics. */
interface RouteChildren {
  readonly duration: Histogram.Internal<'route' | 'method'>;
  readonly byStatus: Map<number, Counter.Internal>;
}

export interface Metrics {
  readonly registry: Registry;
  /** Records one finished request. `route` is the route pattern, never the raw path. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** Records one accepted increment unit of `views` views (a single POST or a batch). */
  observeIncrement(units: number, views: number): void;
  /** Exposes the store's commits and sizes; returns a function that stops watching. */
  watchStore(store: MeteredStore): () => void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
  /** Ends what the default collectors keep running (idempotent; the node's stop() calls it last). */
  stop(): void;
}

/**
 * prom-client's default collectors start two things per registry that nothing ever stops: a
 * PerformanceObserver of every GC and an enabled event-loop delay histogram. A process that
 * starts and stops nodes (the tests, the bench) kept one of each per node, each GC calling every
 * observer. prom-client hands neither out, so they are caught as it makes them: its collectors
 * look both up on the `perf_hooks` module at the call, and the call is synchronous, so the
 * module's two entries are swapped for its length only. Returns what ends them.
 */
function collectStoppableDefaultMetrics(registry: Registry, prefix: string): () => void {
  const hooks = perfHooks as { PerformanceObserver: typeof perfHooks.PerformanceObserver; monitorEventLoopDelay: typeof perfHooks.monitorEventLoopDelay };
  const { PerformanceObserver: Observer, monitorEventLoopDelay } = hooks;
  const observers: InstanceType<typeof Observer>[] = [];
  const histograms: IntervalHistogram[] = [];
  hooks.PerformanceObserver = class extends Observer {
    constructor(callback: ConstructorParameters<typeof Observer>[0]) {
      super(callback);
      observers.push(this);
    }
  };
  hooks.monitorEventLoopDelay = (options) => {
    const histogram = monitorEventLoopDelay(options);
    histograms.push(histogram);
    return histogram;
  };
  try {
    collectDefaultMetrics({ register: registry, prefix });
  } finally {
    hooks.PerformanceObserver = Observer;
    hooks.monitorEventLoopDelay = monitorEventLoopDelay;
  }
  return () => {
    for (const observer of observers.splice(0)) observer.disconnect();
    for (const histogram of histograms.splice(0)) histogram.disable();
  };
}

export function createMetrics(options: { defaultMetrics?: boolean; prefix?: string } = {}): Metrics {
  const registry = new Registry();
  const prefix = options.prefix ?? METRIC_PREFIX;
  let stopDefaults = (): void => {};
  if (options.defaultMetrics === true) {
    stopDefaults = collectStoppableDefaultMetrics(registry, prefix);
    // prom-client names three gauges `…_total`, which Prometheus reserves for counters
    // (`promtool check metrics` refuses them). Dropped: `nodejs_active_resources` (by type) and
    // `nodejs_active_handles` say the same.
    for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(`${prefix}${name}`);
  }

  const requests = new Counter({
    name: `${prefix}http_requests_total`,
    help: 'HTTP requests by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: `${prefix}http_request_duration_seconds`,
    help: 'HTTP request duration by route pattern and method.',
    labelNames: ['route', 'method'] as const,
    buckets: HTTP_DURATION_BUCKETS_S,
    registers: [registry],
  });
  const units = new Counter({
    name: `${prefix}increment_requests_total`,
    help: 'Increment units accepted (one per POST /api/pages/:page/views or POST /api/views); divided by commits this is the mean group-commit size.',
    registers: [registry],
  });
  const views = new Counter({
    name: `${prefix}views_counted_total`,
    help: 'Views counted locally (sum of "by").',
    registers: [registry],
  });
  const commits = new Counter({
    name: `${prefix}store_commits_total`,
    help: 'Local commits (each one group of increments under one seq).',
    registers: [registry],
  });
  const commitPages = new Histogram({
    name: `${prefix}store_commit_pages`,
    help: 'Pages raised per local commit.',
    buckets: COMMIT_PAGES_BUCKETS,
    registers: [registry],
  });
  const mergedPages = new Counter({
    name: `${prefix}store_merge_changed_pages_total`,
    help: 'Page totals raised by merges from peers.',
    registers: [registry],
  });

  // Children are looked up once per label set: the labels() hash is not free on the hot path.
  // By route, then method (no key string built per request: issue 19); both are bounded label
  // sets (route patterns and KNOWN_METHODS, error-middleware.ts), statuses those koa can set.
  const routeChildren = new Map<string, Map<string, RouteChildren>>();
  const childrenOf = (route: string, method: string): RouteChildren => {
    let byMethod = routeChildren.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      routeChildren.set(route, byMethod);
    }
    let children = byMethod.get(method);
    if (children === undefined) {
      children = { duration: durations.labels(route, method), byStatus: new Map() };
      byMethod.set(method, children);
    }
    return children;
  };

  let watched: MeteredStore | undefined;
  const gauge = (name: string, help: string, read: (s: ReturnType<MeteredStore['stats']>) => number): void => {
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers: [registry],
      collect() {
        if (watched !== undefined) this.set(read(watched.stats()));
      },
    });
  };
  gauge('store_pages', 'Pages known to this node.', (s) => s.pages);
  gauge('store_slots', 'G-Counter slots (page × replica) held.', (s) => s.slots);
  gauge('store_replicas', 'Replicas whose slots are held.', (s) => s.replicas);
  gauge('store_bytes', 'Bytes of the database on disk.', (s) => s.bytes);
  new Gauge({
    name: `${prefix}store_writes_blocked`,
    help: 'Whether the store refuses writes, by reason: disk_full (lifted by itself once there is room), database_gone (the file was deleted or replaced; restart).',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      const code = watched?.writeBlocked?.()?.code;
      for (const reason of WRITE_BLOCK_REASONS) this.set({ reason }, code === reason ? 1 : 0);
    },
  });
  new Gauge({
    name: `${prefix}store_local_seq`,
    help: "This replica's highest committed seq.",
    registers: [registry],
    collect() {
      if (watched !== undefined) this.set(watched.localSeq());
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    observeRequest(route, method, status, seconds) {
      const children = childrenOf(route, method);
      let counter = children.byStatus.get(status);
      if (counter === undefined) {
        counter = requests.labels(route, method, String(status));
        children.byStatus.set(status, counter);
      }
      counter.inc();
      children.duration.observe(seconds);
    },
    observeIncrement(count, total) {
      units.inc(count);
      views.inc(total);
    },
    watchStore(store) {
      watched = store;
      const offCommit = store.onCommit((commit) => {
        commits.inc();
        commitPages.observe(commit.slots.length);
      });
      const offChange = store.onChange((changed, origin) => {
        if (origin === 'merge') mergedPages.inc(changed.length);
      });
      return () => {
        offCommit();
        offChange();
        if (watched === store) watched = undefined;
      };
    },
    render: () => registry.metrics(),
    stop: () => stopDefaults(),
  };
}
