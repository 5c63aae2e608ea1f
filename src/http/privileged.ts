/**
 * Who may see the private views (`/metrics`, the full `/api/cluster`) and use the admin routes
 * (reset, delete): every request on the cluster port (reached over the private network only), and
 * a request on the public port that carries `Authorization: Bearer <token>` with one of
 * ADMIN_TOKENS (compared in constant time, src/tokens.ts). With no admin token configured, no
 * public request is privileged.
 *
 *   app.use(privilegeMiddleware({ privileged: false, adminTokens }));   // once, early
 *   router.get('/metrics', privateRoute, handler);                      // a private route
 *   requirePrivileged(ctx);                                             // inside a handler
 *   if (isPrivileged(ctx)) …                                            // a view that differs
 */
import type { Context, Middleware } from 'koa';
import { AppError } from '../errors.js';
import { bearerToken, tokenMatches, type TokenSet } from '../tokens.js';

export interface PrivilegeOptions {
  /** True on the cluster port's app: every request there is privileged. */
  readonly privileged: boolean;
  /** ADMIN_TOKENS (see tokens.ts); empty: no public request is privileged. */
  readonly adminTokens: TokenSet;
}

interface PrivilegeState {
  privileged?: boolean;
}

/** Sets `ctx.state.privileged` for the rest of the chain. */
export function privilegeMiddleware(options: PrivilegeOptions): Middleware {
  // Not async (here and in the other pass-through middleware): an async layer that returns
  // next() wraps its promise in one more, two extra microtask turns a request (issue 19).
  return function privilege(ctx, next) {
    (ctx.state as PrivilegeState).privileged =
      options.privileged || (options.adminTokens.length > 0 && tokenMatches(bearerToken(ctx.get('Authorization') || undefined), options.adminTokens));
    return next();
  };
}

export function isPrivileged(ctx: Context): boolean {
  return (ctx.state as PrivilegeState).privileged === true;
}

/**
 * Throws unless the request is privileged: 401 `admin_token_required` without a bearer token,
 * 403 `admin_token_refused` with one that is not an admin token.
 */
export function requirePrivileged(ctx: Context): void {
  if (isPrivileged(ctx)) return;
  const header = ctx.get('Authorization');
  if (bearerToken(header === '' ? undefined : header) === undefined) {
    ctx.set('WWW-Authenticate', 'Bearer');
    throw new AppError('admin_token_required', `${ctx.path} is private: send Authorization: Bearer <one of ADMIN_TOKENS>, or ask the cluster port (CLUSTER_PORT)`);
  }
  throw new AppError('admin_token_refused', 'the token is not one of ADMIN_TOKENS');
}

/** Route middleware form of requirePrivileged. */
export const privateRoute: Middleware = async function privateRoute(ctx, next) {
  requirePrivileged(ctx);
  return next();
};
