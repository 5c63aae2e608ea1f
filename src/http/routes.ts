/**
 * The routes of the HTTP API (README, "HTTP API"). Handlers validate everything, then call the
 * store; they never see SQLite or sockets. The increment path is kept lean: no body read when
 * none is declared, no per-request closures, one store call. Who may count what is the view
 * policy's (view-policy.ts): write-token holders send `by` and batches; anonymous views count
 * one, after its checks.
 *
 * Over 300 lines: the counting and reading routes of the public API in one router, so that the lean
 * increment path is read in one place; the series, tag and admin routes are apart.
 */
import type { Context } from 'koa';
import { Router } from '@koa/router';
import { AppError } from '../errors.js';
import type { PageName, ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { Metrics } from '../metrics.js';
import type { Steps, StepRunner } from '../steps.js';
import type { Increment, PageCount, Store } from '../store/store.js';
import { batchIncrementSteps, checkPageName, hasNoBody, incrementBy, parseJson, readAnonymousBody, readJsonBody, readJsonBytes } from './body.js';
import { fingerprintSteps, idempotencyKey, type IdempotencyKeys } from './idempotency.js';
import type { ClusterStatusSource } from '../cluster-status.js';
import { isPrivileged, privateRoute } from './privileged.js';
import { pageStatus, publicClusterStatus } from './public-status.js';
import { claimedReplicas, foldClusterStatus, foldPageReplicas } from './replica-fold.js';
import { escapeHtml, HOME_PAGE, PAGE_CSP, renderPage } from './page.js';
import { ASSET_MAX_AGE_S, pageAssets } from './page-assets/assets.js';
import type { NotCounted, ViewPolicy } from './view-policy.js';
import { mountTagRoutes, type CountAnonymous } from './tag-routes.js';
import { mountDashboard } from './dashboard.js';
import { mountAdminRoutes } from './admin-routes.js';
import { mountSeriesRoutes } from './series-routes.js';
import { EMPTY_SESSION, MAX_TOKEN_PAGES, mergeSeen, pageHash, remember, resetAhead, SESSION_HEADER, sessionPageHashes, type Session, type SessionTokens } from './session-token.js';

export const DEFAULT_PAGE_LIMIT = 100;
/** Largest body an anonymous view may send: it may hold `{}` at most, so a flood cannot make the node read MAX_BODY_BYTES a request. */
export const ANONYMOUS_MAX_BODY_BYTES = 1024;
export const MAX_PAGE_LIMIT = 1000;

export type Readiness = 'starting' | 'catching_up' | 'ready' | 'shutting_down';

export interface RouteDeps {
  readonly store: Store;
  readonly cluster: ClusterStatusSource;
  readonly metrics: Metrics;
  readonly maxBodyBytes: number;
  readonly views: ViewPolicy;
  /** Signs and verifies `Counter-Session` tokens. */
  readonly sessions: SessionTokens;
  /**
   * `catching_up` while a node with peers merges its first sync rounds (counts wait); `ready`
   * after; `shutting_down` once stop() began.
   */
  readonly readiness: () => Readiness;
  /** Stamps `parsed` for sampled pages (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /** `POST /api/views` answers by `Idempotency-Key` (idempotency.ts). */
  readonly idempotency: IdempotencyKeys;
  /** Runs the work of large bodies in slices of loop turns (steps.ts); one per process. */
  readonly steps: StepRunner;
}

/** Pages of a batch's answer per step (some 10–50 µs). */
const ANSWER_PAGES_PER_STEP = 256;
/**
 * A body this small is parsed and checked in one piece, at once when the StepRunner is idle
 * (some 100 µs: at most some 800 views): a batch of a few views took 3 loop turns from its body's
 * end to its answer through the runner, 1 on main. Larger bodies go in slices.
 */
const SMALL_BODY_BYTES = 16 * 1024;

/**
 * A batch's body in steps: parsed (one step: JSON.parse of a maximal batch is 3–6 ms here),
 * checked (batchIncrementSteps), and fingerprinted when it carries an Idempotency-Key.
 */
function* batchSteps(bytes: Buffer, keyed: boolean): Steps<{ increments: Increment[]; print: string | undefined }> {
  const body = parseJson(bytes);
  yield;
  const increments = yield* batchIncrementSteps(body);
  return { increments, print: keyed ? yield* fingerprintSteps(increments) : undefined };
}

/** `steps`, stopped (undefined) at the first step after the request's client went away. */
function* unlessGone<T>(ctx: Context, steps: Steps<T>): Steps<T | undefined> {
  for (;;) {
    if (!ctx.writable) {
      steps.return(undefined as T);
      return undefined;
    }
    const next = steps.next();
    if (next.done === true) return next.value;
    yield;
  }
}

/** The end of a counted batch whose client went away: nothing is written (koa skips a socket that is gone). */
function gone(ctx: Context): void {
  ctx.status = 200;
  ctx.body = '';
}

// The raw (still percent-encoded) page segment: the router's own decoding hides malformed
// escapes by passing them through verbatim, which would count "%E0%A4%A" as a page.
const PAGE_SEGMENT = /^\/api\/pages\/([^/]+)/;

/** The `:page` of the path, decoded strictly; a malformed escape or a bad name is a 400. */
export function pageFromPath(path: string): PageName {
  const raw = PAGE_SEGMENT.exec(path)?.[1];
  if (raw === undefined) throw new AppError('bad_page_name', 'the path has no page name');
  return decodePageName(raw);
}

/** A percent-encoded page name, decoded strictly and checked. */
function decodePageName(raw: string): PageName {
  let decoded = raw;
  if (raw.includes('%')) {
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      throw new AppError('bad_page_name', 'the page name in the path has a malformed percent-encoding');
    }
    return checkPageName(decoded);
  }
  // Copied: a name cut from the path is a V8 slice of the request line, and kept as a key of the
  // slot or page-hash cache it would hold the whole URL (query included, up to the 16 KB header
  // bound) alive: 4,096 names from 15 KB URLs held 62.5 MB (review of issue 19's sixth pass).
  // Checked first, so the UTF-8 round trip is exact (a valid name has no lone surrogate).
  return Buffer.from(checkPageName(decoded), 'utf8').toString('utf8') as PageName;
}

// The page's name is the rest of the path, slashes included (`/pages/blog/hello`), decoded strictly.
const PAGE_PATH = /^\/pages\/(.*)$/;

/** The page of `/pages/<name>`; a malformed escape or a bad name is a 400. */
export function pageFromPagePath(path: string): PageName {
  return decodePageName(PAGE_PATH.exec(path)?.[1] ?? '');
}

const NO_STORE = 'no-store';

/** The request's `Counter-Session`, verified before anything is counted (a bad one is a 400). */
function requestSession(ctx: Context, sessions: SessionTokens): Session {
  const token = ctx.get(SESSION_HEADER);
  return token === '' ? EMPTY_SESSION : sessions.verify(token);
}

export function createRouter(deps: RouteDeps): Router {
  const { store, cluster, metrics, maxBodyBytes, views, sessions, probe } = deps;
  const router = new Router();

  /**
   * The answer for one page (a view, a read) as this node has it, max-merged with what the
   * session saw (so never below it), and the session token that remembers it (set as the
   * response header); returns the count. What answerSteps does for a one-page list, without its
   * generator, Map and list (one page is never past MAX_TOKEN_PAGES).
   */
  const answerOne = (ctx: Context, session: Session, page: PageName): number => {
    const merged = mergeSeen(page, store.pageSlots(page), session);
    ctx.set(SESSION_HEADER, sessions.sign(remember(session, [{ page, count: merged.count, epoch: merged.epoch, replicas: merged.replicas }])));
    return merged.count;
  };

  /**
   * Answers for `pages` as this node has them, max-merged with what the session saw, and their
   * token, in steps (steps.ts) of ANSWER_PAGES_PER_STEP pages, for a batch's answer.
   */
  function* answerSteps(ctx: Context, session: Session, pages: readonly PageName[], committed?: ReadonlyMap<PageName, number>): Steps<Map<PageName, number>> {
    const shown = new Map<PageName, number>();
    const seen: Array<{ page: string; count: number; epoch: number; replicas: ReadonlyMap<ReplicaId, number> }> = [];
    const held = session.pages.length === 0 ? undefined : sessionPageHashes(session);
    for (let i = 0; i < pages.length; i++) {
      if ((i + 1) % ANSWER_PAGES_PER_STEP === 0) yield;
      const page = pages[i] as PageName;
      if (shown.has(page)) continue;
      // Past what a token can carry, a page the session does not hold is answered with its count
      // as this batch's commit left it (a merge or reset may have landed since: the answer of a
      // large batch runs turns after its commit, and that count is still one the page had), without reading its slots:
      // a batch of 10,000 new pages read 10,000 pages' slots, holding the loop for seconds.
      const count = seen.length >= MAX_TOKEN_PAGES ? committed?.get(page) : undefined;
      if (count !== undefined && (held === undefined || !held.has(pageHash(page)))) {
        shown.set(page, count);
        continue;
      }
      const merged = mergeSeen(page, store.pageSlots(page), session);
      shown.set(page, merged.count);
      seen.push({ page, count: merged.count, epoch: merged.epoch, replicas: merged.replicas });
    }
    ctx.set(SESSION_HEADER, sessions.sign(remember(session, seen)));
    return shown;
  }

  /**
   * A batch's answer in steps: the pages' counts (answerSteps), then the JSON body written in
   * pieces of ANSWER_PAGES_PER_STEP entries, the bytes JSON.stringify of the whole would give.
   */
  function* batchAnswerSteps(ctx: Context, session: Session, counts: readonly PageCount[]): Steps<string> {
    const shown = yield* answerSteps(
      ctx,
      session,
      counts.map((c) => c.page),
      new Map(counts.map((c) => [c.page, c.count])),
    );
    const pieces: string[] = [];
    for (let i = 0; i < counts.length; i += ANSWER_PAGES_PER_STEP) {
      yield;
      const entries = counts.slice(i, i + ANSWER_PAGES_PER_STEP).map((c) => ({ page: c.page, count: shown.get(c.page) }));
      pieces.push(JSON.stringify(entries).slice(1, -1));
    }
    return `{"pages":[${pieces.join(',')}]}`;
  }

  /**
   * One anonymous view of `page`, after the policy's checks: the page's total after it, or the
   * current total when the request is not counted (a crawler, a prefetch, HEAD: the reason is
   * left in `ctx.state.notCounted`). The one path of every anonymous view (tag-routes.ts too).
   */
  const countAnonymous: CountAnonymous = async (ctx, page, options) => {
    const notCounted = views.notCounted(ctx.req);
    if (notCounted !== undefined) {
      (ctx.state as { notCounted?: NotCounted }).notCounted = notCounted;
      return store.count(page);
    }
    try {
      await views.limit(ctx.req);
    } catch (error) {
      const retryAfterS = (error as { retryAfterS?: unknown }).retryAfterS;
      if (typeof retryAfterS === 'number') ctx.set('Retry-After', String(retryAfterS));
      throw error;
    }
    views.admit(page, options);
    // Every anonymous view that counts is a visitor too (bots and prefetches returned above).
    const counts = await store.increment([{ page, by: 1, visitor: views.visitor(ctx.req) }]);
    metrics.observeIncrement(1, 1);
    return (counts[0] as { count: number }).count;
  };

  /** Refuses (503, Retry-After) increments of pages whose reset the session saw and this node has not. */
  const refuseIfResetAhead = (ctx: Context, session: Session, pages: Iterable<PageName>): void => {
    if (session.pages.length === 0) return;
    for (const page of pages) {
      if (!resetAhead(page, () => store.pageSlots(page), session)) continue;
      ctx.set('Retry-After', '1');
      throw new AppError('reset_not_seen', `this node has not yet received the reset of "${page}" your session saw; retry in a moment (or on the node that answered you)`);
    }
  };

  router.post('/api/pages/:page/views', async (ctx: Context) => {
    const page = pageFromPath(ctx.path);
    const session = requestSession(ctx, sessions);
    refuseIfResetAhead(ctx, session, [page]);
    if (views.caller(ctx.req) === 'anonymous') {
      // A body is allowed (sendBeacon sends one) but not `by`: anonymous views count one.
      if (!hasNoBody(ctx.req)) {
        const body = await readAnonymousBody(ctx.req, Math.min(maxBodyBytes, ANONYMOUS_MAX_BODY_BYTES));
        if (typeof body === 'object' && body !== null && 'by' in body) throw views.tokenRequired('"by"');
        incrementBy(body);
      }
      probe?.mark('parsed', page);
      await countAnonymous(ctx, page);
      ctx.body = { page, count: answerOne(ctx, session, page) };
      return;
    }
    const by = hasNoBody(ctx.req) ? 1 : incrementBy(await readJsonBody(ctx.req, maxBodyBytes));
    probe?.mark('parsed', page);
    await store.increment([{ page, by }]);
    metrics.observeIncrement(1, by);
    ctx.body = { page, count: answerOne(ctx, session, page) };
  });

  router.post('/api/views', async (ctx: Context) => {
    views.requireWriter(ctx.req, 'POST /api/views (a batch)');
    const session = requestSession(ctx, sessions);
    const key = idempotencyKey(ctx.req);
    const bytes = await readJsonBytes(ctx.req, maxBodyBytes);
    if (bytes === undefined) throw new AppError('bad_request', 'the body must be a JSON object like {"views": [{"page": "home", "by": 1}]}');
    // Parsed, checked and fingerprinted in slices shared with the other bodies (steps.ts).
    const { increments, print } = await deps.steps.run(batchSteps(bytes, key !== undefined), { small: bytes.length <= SMALL_BODY_BYTES });
    refuseIfResetAhead(ctx, session, new Set(increments.map((increment) => increment.page)));
    let counts: PageCount[];
    let replayed = false;
    if (key === undefined) counts = await store.increment(increments);
    else {
      // A retry of a batch this node counted gets the first answer, and counts nothing more.
      ({ counts, replayed } = await deps.idempotency.run(key, increments, () => store.increment(increments), print));
      if (replayed) ctx.set('Idempotency-Replayed', 'true');
    }
    let total = 0;
    for (const increment of increments) total += increment.by;
    if (!replayed) metrics.observeIncrement(1, total);
    // A client gone meanwhile gets no answer built (its views are counted: the body arrived).
    if (!ctx.writable) return gone(ctx);
    // A short answer at once; a long one on later turns than the commit (its answers, events and
    // caches were one piece already), in slices shared with the other bodies, ahead of new parses.
    const body = await deps.steps.run(unlessGone(ctx, batchAnswerSteps(ctx, session, counts)), { small: counts.length <= ANSWER_PAGES_PER_STEP, finishing: true });
    if (body === undefined) return gone(ctx);
    ctx.type = 'json';
    ctx.body = body;
  });

  router.get('/api/pages/:page', (ctx: Context) => {
    const page = pageFromPath(ctx.path);
    const session = requestSession(ctx, sessions);
    ctx.set('Cache-Control', NO_STORE);
    ctx.body = { page, count: answerOne(ctx, session, page) };
  });

  router.get('/api/pages', (ctx: Context) => {
    const limit = parseLimit(ctx.query.limit);
    const afterText = ctx.query.after;
    if (Array.isArray(afterText)) throw new AppError('bad_request', 'give "after" at most once');
    const after = afterText === undefined ? undefined : checkPageName(afterText, 'after');
    const session = requestSession(ctx, sessions);
    // One more than asked tells whether a next page exists without an extra query.
    const rows = store.listPages({ ...(after !== undefined ? { after } : {}), limit: limit + 1 });
    // Pages the session saw are answered at least as seen; the token comes back as it was (a
    // listing would not fit in one), so only single and batch answers add pages to it.
    // Only the rows the session holds read their slots (a token names a few pages, a listing 1,000).
    const held = sessionPageHashes(session);
    const pages = rows
      .slice(0, limit)
      .map((r) => ({ page: r.page, count: held.size === 0 || !held.has(pageHash(r.page)) ? r.count : mergeSeen(r.page, store.pageSlots(r.page), session).count }));
    ctx.set(SESSION_HEADER, sessions.sign(session));
    ctx.set('Cache-Control', NO_STORE);
    ctx.body = { pages, next: rows.length > limit ? (pages[pages.length - 1] as { page: string }).page : null };
  });

  mountAdminRoutes(router, { store, maxBodyBytes }, decodePageName);
  mountSeriesRoutes(router, { store, mayBePage: (page) => views.admission.mayExist(page) }, pageFromPath);
  mountTagRoutes(router, { store, countAnonymous, decodePageName });
  mountDashboard(router, () => ({ nodeName: cluster.status().node.name, version: cluster.status().node.version }));

  // The full status (addresses, replica ids, errors, lag) is private; the public one shows names,
  // regions and states.
  router.get('/api/cluster', (ctx: Context) => {
    ctx.set('Cache-Control', NO_STORE);
    const status = cluster.status();
    // Private: bounded whatever the number of replica ids; `?replicas=all` for every one (replica-fold.ts).
    if (isPrivileged(ctx)) ctx.body = ctx.query.replicas === 'all' ? status : foldClusterStatus(status);
    else ctx.body = publicClusterStatus(status);
  });

  router.get('/healthz', (ctx: Context) => {
    ctx.set('Cache-Control', NO_STORE);
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', (ctx: Context) => {
    const state = deps.readiness();
    if (state === 'shutting_down') throw new AppError('shutting_down', 'the node is shutting down');
    if (state === 'catching_up') throw new AppError('catching_up', 'the node is catching up with its peers before it serves counts');
    if (state !== 'ready') throw new AppError('not_ready', 'the database is not open yet');
    // Reads are still served, but a node that cannot count is not ready (503 with the reason).
    const blocked = store.writeBlocked();
    if (blocked !== undefined) throw new AppError(blocked.code, blocked.reason);
    ctx.set('Cache-Control', NO_STORE);
    ctx.body = { status: 'ready' };
  });

  router.get('/metrics', privateRoute, async (ctx: Context) => {
    ctx.type = metrics.contentType;
    ctx.body = await metrics.render();
  });

  // The page: counts its own view on GET (so it works with JavaScript off), renders the count,
  // as an anonymous view. HEAD (link checkers, monitors), prefetches and crawlers see the page
  // without counting. `/pages/<name>` serves only pages that exist or whose name matches
  // PAGE_PATTERN, so a scanner's guesses (`/pages/wp-login.php`) are 404s that create nothing.
  const servePage = async (ctx: Context, page: PageName, home: boolean): Promise<void> => {
    ctx.set('Cache-Control', NO_STORE);
    ctx.set('X-Content-Type-Options', 'nosniff');
    if (!home && !views.admission.exists(page) && !views.admission.matchesPattern(page)) {
      ctx.status = 404;
      ctx.set('Content-Security-Policy', PAGE_CSP);
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = renderNotFound(page);
      return;
    }
    await countAnonymous(ctx, page, { ignorePattern: home });
    const seen = mergeSeen(page, store.pageSlots(page), EMPTY_SESSION);
    const count = seen.count;
    const status = cluster.status();
    // Shown folded past MAX_SHOWN_REPLICAS (replica-fold.ts); the token keeps every slot.
    const replicas = foldPageReplicas(Object.fromEntries(seen.replicas), () => claimedReplicas(status));
    // The page's own view, for its script to carry to the live feed (live.js).
    const session = sessions.sign(remember(EMPTY_SESSION, [{ page, count, epoch: seen.epoch, replicas: seen.replicas }]));
    ctx.set(SESSION_HEADER, session);
    ctx.set('Content-Security-Policy', PAGE_CSP);
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = renderPage({ page, count, replicas, session, epoch: seen.epoch, status: pageStatus(foldClusterStatus(status)) });
  };

  router.get('/', (ctx: Context) => servePage(ctx, HOME_PAGE as PageName, true));
  router.get('/pages/{*page}', (ctx: Context) => servePage(ctx, pageFromPagePath(ctx.path), false));

  for (const [path, asset] of pageAssets()) {
    router.get(path, (ctx: Context) => {
      ctx.set('Cache-Control', `public, max-age=${ASSET_MAX_AGE_S}`);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.etag = asset.etag;
      ctx.type = asset.type;
      ctx.status = 200; // koa judges freshness only on a 2xx response
      if (ctx.fresh) {
        ctx.status = 304;
        return;
      }
      ctx.body = asset.body;
    });
  }

  return router;
}

function parseLimit(value: string | string[] | undefined): number {
  if (value === undefined) return DEFAULT_PAGE_LIMIT;
  const limit = typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE_LIMIT)) throw new AppError('bad_request', `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}`);
  return limit;
}

/** The 404 of `/pages/<name>` for a page that does not exist (and may not be created by a view). */
function renderNotFound(page: PageName): string {
  const name = escapeHtml(page);
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>No such page · distributed-sqlite</title></head>
<body>
<h1>No page <q>${name}</q></h1>
<p>This node counts no page of that name, so this address counts nothing. A page is created by its first view: <code>POST /api/pages/&lt;name&gt;/views</code>.</p>
</body>
</html>
`;
}
