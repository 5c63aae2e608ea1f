/**
 * What other sites embed (README "Integration"): the no-JavaScript pixel `GET /count.gif` and
 * the badge `GET /badge/:page.svg`. (The tag, `/count.js`, is a static asset: assets.ts.) Both
 * count through the same anonymous-view path as `POST /api/pages/:page/views` (routes.ts
 * `countAnonymous`: bots and prefetches not counted, rate limits, page admission).
 *
 * An image must not break the page that shows it, so neither answers JSON: a view that is not
 * counted still gets its image, with the status of the refusal (400, 403, 429, 503) and the
 * header `Counter-View` saying what happened:
 *   `counted` · `not-counted; reason=bot|prefetch|head` · `refused; reason=<error code>`.
 */
import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { AppError, isAppError } from '../errors.js';
import type { PageName } from '../ids.js';
import type { Store } from '../store/store.js';
import { checkPageName } from './body.js';
import { ERROR_COLOR, renderBadge } from './badge.js';
import { formatCount } from './page.js';
import type { NotCounted } from './view-policy.js';

/** One anonymous view of `page` through the view policy (routes.ts): the page's total after it. */
export type CountAnonymous = (ctx: Context, page: PageName, options?: { ignorePattern?: boolean }) => Promise<number>;

export const COUNTER_VIEW_HEADER = 'Counter-View';
/** Browsers, README renderers and image proxies reuse a badge this long. */
export const BADGE_MAX_AGE_S = 60;
export const DEFAULT_BADGE_LABEL = 'views';
/** Longest `?label=` of a badge, characters. */
export const MAX_BADGE_LABEL_CHARS = 64;
/** The badge's policy: an SVG opened on its own runs nothing and loads nothing. */
export const BADGE_CSP = "default-src 'none'; frame-ancestors *";

/** A transparent 1×1 GIF (43 bytes). */
export const PIXEL_GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

// The raw (still percent-encoded) name: `/badge/<name>.svg`, slashes allowed in the name.
const BADGE_PATH = /^\/badge\/(.+)\.svg$/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

export interface TagRouteDeps {
  readonly store: Pick<Store, 'count'>;
  readonly countAnonymous: CountAnonymous;
  /** The strict decoding of a percent-encoded page name (routes.ts). */
  readonly decodePageName: (raw: string) => PageName;
}

/** One query parameter, given at most once. */
function oneParam(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new AppError('bad_request', `give "${name}" at most once`);
  return value;
}

/**
 * Counts one view; what happened goes into `Counter-View`. A refusal is returned (the image is
 * still answered, with its status); anything that is not an AppError is a bug and is thrown.
 */
async function countView(ctx: Context, deps: TagRouteDeps, page: PageName): Promise<AppError | undefined> {
  try {
    await deps.countAnonymous(ctx, page);
    const notCounted = (ctx.state as { notCounted?: NotCounted }).notCounted;
    ctx.set(COUNTER_VIEW_HEADER, notCounted === undefined ? 'counted' : `not-counted; reason=${notCounted}`);
    return undefined;
  } catch (error) {
    if (!isAppError(error)) throw error;
    ctx.set(COUNTER_VIEW_HEADER, `refused; reason=${error.code}`);
    return error;
  }
}

function badgeLabel(ctx: Context): string {
  const label = oneParam(ctx, 'label');
  if (label === undefined) return DEFAULT_BADGE_LABEL;
  const chars = [...label].length;
  if (chars < 1 || chars > MAX_BADGE_LABEL_CHARS || CONTROL_CHARACTERS.test(label)) {
    throw new AppError('bad_request', `label must be 1 to ${MAX_BADGE_LABEL_CHARS} characters without control characters`);
  }
  return label;
}

function badgeCounts(ctx: Context): boolean {
  const count = oneParam(ctx, 'count');
  if (count === undefined || count === '0') return false;
  if (count === '1') return true;
  throw new AppError('bad_request', 'count must be 1 (count a view) or 0 (only show the count)');
}

export function mountTagRoutes(router: Router, deps: TagRouteDeps): void {
  // `<noscript><img src=".../count.gif?page=/blog/hello" alt=""></noscript>`: never cached, so
  // every page view reaches the node.
  router.get('/count.gif', async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cross-Origin-Resource-Policy', 'cross-origin');
    let refusal: AppError | undefined;
    try {
      const raw = oneParam(ctx, 'page');
      if (raw === undefined) throw new AppError('bad_page_name', 'give the page to count: /count.gif?page=<name>');
      refusal = await countView(ctx, deps, checkPageName(raw));
    } catch (error) {
      if (!isAppError(error)) throw error;
      ctx.set(COUNTER_VIEW_HEADER, `refused; reason=${error.code}`);
      refusal = error;
    }
    ctx.status = refusal?.status ?? 200;
    ctx.type = 'image/gif';
    ctx.body = PIXEL_GIF;
  });

  router.get('/badge/{*rest}', async (ctx: Context) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', BADGE_CSP);
    ctx.set('Cross-Origin-Resource-Policy', 'cross-origin');
    const raw = BADGE_PATH.exec(ctx.path)?.[1];
    if (raw === undefined) throw new AppError('not_found', 'a badge is at /badge/<page>.svg');
    let label = DEFAULT_BADGE_LABEL;
    let page: PageName;
    let counts: boolean;
    try {
      label = badgeLabel(ctx);
      page = deps.decodePageName(raw);
      counts = badgeCounts(ctx);
    } catch (error) {
      if (!isAppError(error)) throw error;
      // Still an image, so the page showing it shows what is wrong.
      ctx.set('Cache-Control', 'no-store');
      ctx.set(COUNTER_VIEW_HEADER, `refused; reason=${error.code}`);
      ctx.status = error.status;
      ctx.type = 'image/svg+xml; charset=utf-8';
      ctx.body = renderBadge({ label, value: error.code === 'bad_page_name' ? 'bad page name' : 'bad request', title: error.message, color: ERROR_COLOR });
      return;
    }
    const refusal = counts ? await countView(ctx, deps, page) : undefined;
    const count = deps.store.count(page);
    const svg = renderBadge({ label, value: formatCount(count), title: `${label} of ${page}: ${formatCount(count)}` });
    ctx.type = 'image/svg+xml; charset=utf-8';
    if (counts) {
      // A counting badge must reach the node every time it is shown.
      ctx.set('Cache-Control', 'no-store');
      ctx.status = refusal?.status ?? 200;
      ctx.body = svg;
      return;
    }
    ctx.set('Cache-Control', `public, max-age=${BADGE_MAX_AGE_S}`);
    ctx.etag = `"${createHash('sha256').update(svg).digest('base64url').slice(0, 22)}"`;
    ctx.status = 200; // koa judges freshness only on a 2xx response
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = svg;
  });
}
