/**
 * The one place errors become responses: AppError → its status and `{"error": {"code","message"}}`;
 * anything else → 500 `internal`, logged with its stack, message hidden. Unmatched routes become
 * 404 `not_found`, a known path with the wrong method 405 `method_not_allowed` (Allow kept).
 * It also records each request's route, status and duration in the metrics.
 */
import type { Middleware } from 'koa';
import { AppError, errorBody, isAppError, type ErrorCode } from '../errors.js';
import type { Log } from '../log.js';
import type { Metrics } from '../metrics.js';
import { drainRequest } from './body.js';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Label for requests no route matched: keeps metric cardinality bounded whatever paths arrive. */
export const UNMATCHED_ROUTE = '(unmatched)';

/** Koa and its helpers throw http-errors with `status` and `expose`; keep their 4xx meaning. */
const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'bad_request',
  403: 'forbidden_origin',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
};

export function toAppError(error: unknown): AppError {
  if (isAppError(error)) return error;
  const status = (error as { status?: unknown } | null)?.status;
  const expose = (error as { expose?: unknown } | null)?.expose;
  if (typeof status === 'number' && expose === true) {
    const code = CODE_BY_STATUS[status];
    if (code !== undefined) return new AppError(code, (error as Error).message, { cause: error });
  }
  return new AppError('internal', 'internal error', { cause: error });
}

/**
 * 503s that are the node holding a bound or saying what state it is in: logged where the state
 * changes (once), not once per refused request, which a flood would turn into a log flood.
 */
const EXPECTED_503: ReadonlySet<string> = new Set(['shutting_down', 'not_ready', 'overloaded', 'too_many_clients', 'disk_full', 'database_gone']);

export function errorMiddleware(log: Log, metrics: Metrics): Middleware {
  return async function handleErrors(ctx, next) {
    const started = performance.now();
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        if (ctx.status === 404) throw new AppError('not_found', `no route for ${ctx.method} ${ctx.path}`);
        if (ctx.status === 405) throw new AppError('method_not_allowed', `${ctx.method} is not allowed here (allowed: ${String(ctx.response.get('Allow'))})`);
      }
    } catch (caught) {
      const error = toAppError(caught);
      if (error.status >= 500 && !EXPECTED_503.has(error.code)) {
        log.error({ err: error.cause ?? error, method: ctx.method, path: ctx.path }, 'request failed');
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.res.destroy();
      } else {
        // A body refused before it was read (bad page name, wrong type): read the rest first, or
        // the close after the answer would reset the connection before the client reads it.
        const unread = !ctx.req.complete;
        if (unread) await drainRequest(ctx.req);
        ctx.status = error.status;
        ctx.body = errorBody(error);
        // A refused body may have been cut off: do not keep the connection for another request.
        // (`overloaded` keeps it: body-budget.ts read that body to its end before refusing it.)
        if (error.code === 'body_too_large' || unread) ctx.set('Connection', 'close');
      }
    } finally {
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      metrics.observeRequest(
        typeof route === 'string' ? route : UNMATCHED_ROUTE,
        KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER',
        ctx.status,
        (performance.now() - started) / 1000,
      );
    }
  };
}
