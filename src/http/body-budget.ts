/**
 * Request bodies in flight, bounded: a request with a body is charged its declared length (or the
 * largest body allowed, when it is chunked) from the moment it is read until its answer is sent,
 * and refused with 503 `overloaded` at once, before a byte is read, when the charge would pass the
 * bound. 64 concurrent 1 MiB batches used to hold 344 MB; the bound holds them to the budget's share.
 */
import type { Context, Next } from 'koa';
import { AppError } from '../errors.js';
import { drainRequest, hasNoBody } from './body.js';

export class BodyBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  get inFlightBytes(): number {
    return this.used;
  }

  /** Charges `bytes`; false (nothing charged) when that would pass the bound and something is in flight. */
  tryCharge(bytes: number): boolean {
    // An idle node takes any one body, so the bound can never refuse everything.
    if (this.used > 0 && this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

/** The koa middleware: charges requests that carry a body, released once the answer is done. */
export function bodyBudgetMiddleware(budget: BodyBudget, maxBodyBytes: number) {
  // Not async for a request without a body: a pass-through layer adds no promise of its own (see privileged.ts).
  return (ctx: Context, next: Next): Promise<void> => (hasNoBody(ctx.req) ? next() : charged(budget, maxBodyBytes, ctx, next));
}

/** A request with a body: charged, or refused when the budget is spent. */
async function charged(budget: BodyBudget, maxBodyBytes: number, ctx: Context, next: Next): Promise<void> {
  const declared = Number(ctx.req.headers['content-length']);
  // A declared length over maxBodyBytes is refused by the body reader (413) and charged as the max.
  const charge = Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, maxBodyBytes) : maxBodyBytes;
  if (!budget.tryCharge(charge)) {
    // Read to the end and discard (no memory held, at most MAX_DRAIN_BYTES), then answer: a 503
    // sent while the client is still sending would have the connection closed under it.
    await drainRequest(ctx.req);
    throw new AppError('overloaded', 'too many request bodies are being processed on this node right now: retry shortly');
  }
  try {
    await next();
  } finally {
    budget.release(charge);
  }
}
