/**
 * CORS for the pages API, so pages on other sites count their views with one `fetch` or
 * `navigator.sendBeacon`. No credentials are involved (the API is anonymous), so `*` is safe as
 * the default. With a list, an unlisted origin gets no CORS headers, its preflight is refused and
 * its POSTs are refused too: a simple POST (sendBeacon) skips the preflight, so headers alone
 * would not stop it from counting. Same-origin requests (the node's own page) are always allowed.
 */
import type { Middleware } from 'koa';
import { AppError } from '../errors.js';

/** How long browsers may cache a preflight answer. */
export const CORS_MAX_AGE_S = 86_400;
const ALLOWED_METHODS = 'GET, POST, OPTIONS';
const ALLOWED_HEADERS = 'Content-Type, Counter-Session';
/** Response headers a page on another site may read: its session token. */
const EXPOSED_HEADERS = 'Counter-Session';

/** Paths under the prefix that other sites may not read: the cluster's status is for its operators and its own page. */
const NOT_CROSS_ORIGIN: ReadonlySet<string> = new Set(['/api/cluster']);

export function corsMiddleware(origins: '*' | readonly string[], pathPrefix = '/api/'): Middleware {
  const listed = origins === '*' ? undefined : new Set(origins);
  // Not async: a pass-through layer adds no promise of its own (see privileged.ts).
  return function cors(ctx, next) {
    const origin = ctx.get('Origin');
    if (origin === '' || !ctx.path.startsWith(pathPrefix) || NOT_CROSS_ORIGIN.has(ctx.path)) return next();

    const allowed = listed === undefined || listed.has(origin) || isSameOrigin(origin, ctx.get('Host'));
    const preflight = ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method') !== '';
    if (listed !== undefined) ctx.vary('Origin');
    if (!allowed) {
      // A rejection, not a throw: a caller of the layer gets a promise either way.
      if (preflight || ctx.method === 'POST') return Promise.reject(new AppError('forbidden_origin', `origin ${origin} is not allowed by CORS_ORIGINS`));
      return next();
    }
    ctx.set('Access-Control-Allow-Origin', listed === undefined ? '*' : origin);
    ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    if (preflight) {
      ctx.set('Access-Control-Allow-Methods', ALLOWED_METHODS);
      ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      ctx.set('Access-Control-Max-Age', String(CORS_MAX_AGE_S));
      ctx.status = 204;
      return undefined;
    }
    return next();
  };
}

function isSameOrigin(origin: string, host: string): boolean {
  if (host === '') return false;
  const at = origin.indexOf('://');
  return at !== -1 && origin.slice(at + 3).toLowerCase() === host.toLowerCase();
}
