/**
 * The koa app as a value: `createApp` wires middleware and routes and never listens. Tests drive
 * `app.callback()` through node:http on port 0; `node.ts` mounts it on the real server.
 */
import Koa from 'koa';
import type { LatencyProbe } from '../latency-probe.js';
import type { Log } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import type { ClusterStatusSource } from '../cluster-status.js';
import { BodyBudget, bodyBudgetMiddleware } from './body-budget.js';
import type { TokenSet } from '../tokens.js';
import { catchUpGate, type ServingGate } from './catch-up-gate.js';
import { corsMiddleware } from './cors.js';
import { errorMiddleware } from './error-middleware.js';
import { privilegeMiddleware } from './privileged.js';
import { createRouter, type Readiness } from './routes.js';
import { IdempotencyKeys } from './idempotency.js';
import { StepRunner } from '../steps.js';
import { ViewPolicy } from './view-policy.js';
import { sessionKey, SessionTokens } from './session-token.js';

export interface AppDeps {
  readonly store: Store;
  readonly cluster: ClusterStatusSource;
  readonly metrics: Metrics;
  readonly log: Log;
  readonly corsOrigins: '*' | readonly string[];
  readonly maxBodyBytes: number;
  /** Request bodies in flight, bytes (see body-budget.ts); default: unbounded. */
  readonly bodyBytesInFlight?: number;
  /** Who may count what (tokens, rate limits, page admission); defaults to the default settings, no tokens. */
  readonly views?: ViewPolicy;
  /** Defaults to always `ready`. */
  readonly readiness?: () => Readiness;
  /** Signs and verifies `Counter-Session` tokens; default: a random key (one node). */
  readonly sessions?: SessionTokens;
  /** Count requests wait for it while the node catches up at start; default: open. */
  readonly gate?: ServingGate;
  /** True for the cluster port's app: every request may see the private views (privileged.ts). */
  readonly privileged?: boolean;
  /** ADMIN_TOKENS: open the private views on the public app. Default: none. */
  readonly adminTokens?: TokenSet;
  /** The latency probe (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /** Batch answers by `Idempotency-Key` (idempotency.ts); share one between a node's apps. Default: one of its own. */
  readonly idempotency?: IdempotencyKeys;
  /** Runs large bodies' parse and checks in slices of loop turns (steps.ts); share one between a node's apps. Default: one of its own. */
  readonly steps?: StepRunner;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  // Every error is turned into a response by errorMiddleware; koa's own stderr printing is off.
  app.silent = true;
  app.on('error', (error: unknown) => deps.log.error({ err: error }, 'koa error'));

  const router = createRouter({
    store: deps.store,
    cluster: deps.cluster,
    metrics: deps.metrics,
    maxBodyBytes: deps.maxBodyBytes,
    views: deps.views ?? new ViewPolicy({ store: deps.store }),
    sessions: deps.sessions ?? new SessionTokens(sessionKey('', '')),
    readiness: deps.readiness ?? (() => 'ready'),
    idempotency: deps.idempotency ?? new IdempotencyKeys(),
    steps: deps.steps ?? new StepRunner(),
    ...(deps.probe !== undefined ? { probe: deps.probe } : {}),
  });

  app.use(errorMiddleware(deps.log, deps.metrics));
  app.use(privilegeMiddleware({ privileged: deps.privileged ?? false, adminTokens: deps.adminTokens ?? [] }));
  app.use(corsMiddleware(deps.corsOrigins));
  // The gate first: a request held while the node catches up has not had its body charged yet.
  if (deps.gate !== undefined) app.use(catchUpGate(deps.gate));
  if (deps.bodyBytesInFlight !== undefined) app.use(bodyBudgetMiddleware(new BodyBudget(deps.bodyBytesInFlight), deps.maxBodyBytes));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
