/**
 * The one check for privileged requests (the admin routes): `Authorization: Bearer <token>` with
 * a token from ADMIN_TOKENS, compared in constant time (src/tokens.ts). With no admin token
 * configured, every privileged request is refused. Kept in one place so that the cluster-port
 * rule (privileged without a token when it arrives on the private port) joins it here.
 */
import type { Context } from 'koa';
import { AppError } from '../errors.js';
import { bearerToken, tokenMatches, type TokenSet } from '../tokens.js';

export function requirePrivileged(ctx: Context, adminTokens: TokenSet): void {
  const header = ctx.get('Authorization');
  const token = bearerToken(header === '' ? undefined : header);
  if (token === undefined) throw new AppError('admin_token_required', 'this route needs Authorization: Bearer <token> with a token from ADMIN_TOKENS');
  if (!tokenMatches(token, adminTokens)) throw new AppError('admin_token_refused', 'the token is not one of ADMIN_TOKENS');
}
