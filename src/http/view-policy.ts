/**
 * Who may count what (README "Anonymous views and tokens"). A request with a write token
 * (`Authorization: Bearer <one of WRITE_TOKENS>`) may send `by`, batches and new pages, unlimited.
 * Every other view is anonymous and counts exactly one, after these checks, cheapest first:
 *   1. a crawler's User-Agent (isbot) or a prefetch is answered with the count, not counted;
 *   2. the client address's rate limit (rate-limit.ts, client-address.ts): 429 `rate_limited`;
 *   3. page admission (page-admission.ts): a new page needs room under MAX_PAGES and, with
 *      PAGE_PATTERN, a matching name: 403 `too_many_pages` / `page_not_allowed`.
 * A token that is present but wrong is refused outright (403 `bad_token`), so a collector with a
 * stale token learns it at once instead of being counted as one anonymous visitor.
 */
import type { IncomingMessage } from 'node:http';
import { isbot } from 'isbot';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AppError } from '../errors.js';
import type { PageName } from '../ids.js';
import { DEFAULT_MAX_PAGES, DEFAULT_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_PER_IP } from '../settings.js';
import { bearerToken, tokenMatches, type TokenSet } from '../tokens.js';
import { clientKey } from './client-address.js';
import { PageAdmission, type AdmissionStore } from './page-admission.js';
import { ClientRateLimiter } from './rate-limit.js';
import type { VisitorRegister } from '../crdt/hyperloglog.js';
import { VisitorKeys } from './visitor-key.js';

/** User-Agent verdicts remembered (isbot costs ~8 µs a call; browsers send few distinct strings). */
export const BOT_CACHE_ENTRIES = 1_000;
/** Longer User-Agents are judged every time rather than remembered: the cache stays small. */
const BOT_CACHE_MAX_UA_CHARS = 512;

export type Caller = 'writer' | 'anonymous';
/** Why an anonymous request is answered without counting a view. */
export type NotCounted = 'bot' | 'prefetch' | 'head';

export interface ViewPolicyOptions {
  readonly store: AdmissionStore;
  readonly writeTokens?: TokenSet;
  /** 0: no rate limit. */
  readonly rateLimitPerIp?: number;
  readonly rateLimitBurst?: number;
  readonly trustProxy?: boolean;
  readonly maxPages?: number;
  readonly pagePattern?: RegExp | undefined;
  readonly maxTrackedClients?: number;
  /** The secret visitor keys derive from (visitor-key.ts): CLUSTER_SECRET; none: random per process. */
  readonly visitorSecret?: string;
  /** False: no visitor keys are computed (ANALYTICS=false: the store would not keep them). Default true. */
  readonly visitors?: boolean;
  /** The clock of visitor days (default Date.now). */
  readonly now?: () => number;
  /** Where the policy's metrics go (none without). */
  readonly registry?: Registry;
  readonly prefix?: string;
}

export class ViewPolicy {
  readonly admission: PageAdmission;
  private readonly tokens: TokenSet;
  private readonly limiter: ClientRateLimiter | undefined;
  private readonly trustProxy: boolean;
  private readonly limitText: string;
  private readonly botVerdicts = new Map<string, boolean>();
  private readonly visitorKeys: VisitorKeys | undefined;
  private readonly now: () => number;
  private readonly notCountedTotal: Counter<'reason'> | undefined;
  private readonly refusedTotal: Counter<'reason'> | undefined;

  constructor(options: ViewPolicyOptions) {
    this.tokens = options.writeTokens ?? [];
    this.visitorKeys = options.visitors === false ? undefined : new VisitorKeys(options.visitorSecret);
    this.now = options.now ?? Date.now;
    const perSecond = options.rateLimitPerIp ?? DEFAULT_RATE_LIMIT_PER_IP;
    this.limiter =
      perSecond > 0
        ? new ClientRateLimiter({ perSecond, burst: options.rateLimitBurst ?? DEFAULT_RATE_LIMIT_BURST, ...(options.maxTrackedClients !== undefined ? { maxTrackedClients: options.maxTrackedClients } : {}) })
        : undefined;
    const burst = options.rateLimitBurst ?? DEFAULT_RATE_LIMIT_BURST;
    this.limitText = `${burst} views per ${burst / perSecond} s (RATE_LIMIT_BURST, RATE_LIMIT_PER_IP)`;
    this.trustProxy = options.trustProxy ?? false;
    this.admission = new PageAdmission({ store: options.store, maxPages: options.maxPages ?? DEFAULT_MAX_PAGES, pattern: options.pagePattern });
    const registry = options.registry;
    if (registry !== undefined) {
      const prefix = options.prefix ?? 'dsqlite_';
      this.notCountedTotal = new Counter({
        name: `${prefix}views_not_counted_total`,
        help: 'Anonymous view requests answered without counting: reason bot (crawler User-Agent), prefetch, head.',
        labelNames: ['reason'] as const,
        registers: [registry],
      });
      this.refusedTotal = new Counter({
        name: `${prefix}views_refused_total`,
        help: 'View requests refused by the view policy, by error code (token_required, bad_token, rate_limited, too_many_pages, page_not_allowed).',
        labelNames: ['reason'] as const,
        registers: [registry],
      });
      const limiter = this.limiter;
      new Gauge({
        name: `${prefix}rate_limit_tracked_clients`,
        help: `Client addresses the rate limiter holds a record for (an upper bound; capped per node).`,
        registers: [registry],
        collect() {
          this.set(limiter?.tracked() ?? 0);
        },
      });
    }
  }

  /** `writer` with a valid write token, `anonymous` without Authorization; a wrong token throws. */
  caller(req: IncomingMessage): Caller {
    const header = req.headers.authorization;
    if (header === undefined) return 'anonymous';
    if (tokenMatches(bearerToken(header), this.tokens)) return 'writer';
    throw this.refuse('bad_token', 'the bearer token is not one of WRITE_TOKENS (send `Authorization: Bearer <token>`, or no Authorization header to count one anonymous view)');
  }

  /** Throws unless the request carries a valid write token (`what` names the action refused). */
  requireWriter(req: IncomingMessage, what: string): void {
    if (this.caller(req) === 'writer') return;
    throw this.tokenRequired(what);
  }

  /** `token_required` for an anonymous request that asked for a writer's action. */
  tokenRequired(what: string): AppError {
    const hint = this.tokens.length === 0 ? ' (this node has no WRITE_TOKENS configured)' : '';
    return this.refuse('token_required', `${what} needs \`Authorization: Bearer <token>\` with one of WRITE_TOKENS${hint}; anonymous views count one (send no body)`);
  }

  /** Why an anonymous request is answered without counting, or undefined when it may count. */
  notCounted(req: IncomingMessage): NotCounted | undefined {
    const reason = req.method === 'HEAD' ? 'head' : isPrefetch(req) ? 'prefetch' : this.isBot(req.headers['user-agent']) ? 'bot' : undefined;
    if (reason !== undefined) this.notCountedTotal?.labels(reason).inc();
    return reason;
  }

  /**
   * Takes one view from the client's allowance; throws `rate_limited` when it has none left,
   * with the seconds to wait (for Retry-After) in `retryAfterS`.
   */
  async limit(req: IncomingMessage): Promise<void> {
    if (this.limiter === undefined) return;
    const decision = await this.limiter.take(clientKey(req, this.trustProxy));
    if (decision.allowed) return;
    throw Object.assign(this.refuse('rate_limited', `too many views from this address: ${this.limitText}; retry after ${decision.retryAfterS} s`), {
      retryAfterS: decision.retryAfterS,
    });
  }

  /** Throws unless an anonymous view may count `page` (see page-admission.ts). */
  admit(page: PageName, options: { ignorePattern?: boolean } = {}): void {
    const refusal = this.admission.refusal(page, options);
    if (refusal === 'too_many_pages') throw this.refuse(refusal, 'the cluster holds MAX_PAGES pages: anonymous views count only pages that exist already');
    if (refusal === 'page_not_allowed') throw this.refuse(refusal, 'the page does not exist and its name does not match PAGE_PATTERN, so an anonymous view cannot create it');
  }

  /**
   * The visitor's register for unique visitors (visitor-key.ts), for a view that counts (call it
   * after notCounted(): bots are not visitors). The site is the Origin's host for a view from
   * another site (count.js, sendBeacon), else the Host the request was sent to. Undefined when
   * visitors are off.
   */
  visitor(req: IncomingMessage): VisitorRegister | undefined {
    if (this.visitorKeys === undefined) return undefined;
    const origin = req.headers.origin;
    let site = req.headers.host ?? '';
    if (typeof origin === 'string' && origin !== 'null') {
      try {
        site = new URL(origin).host;
      } catch {
        // A malformed Origin: the Host stands.
      }
    }
    const userAgent = req.headers['user-agent'] ?? '';
    return this.visitorKeys.register({ address: clientKey(req, this.trustProxy), userAgent, site }, this.now());
  }

  /** Client records the rate limiter holds now (0 when it is off). */
  trackedClients(): number {
    return this.limiter?.tracked() ?? 0;
  }

  private refuse(code: 'token_required' | 'bad_token' | 'rate_limited' | 'too_many_pages' | 'page_not_allowed', message: string): AppError {
    this.refusedTotal?.labels(code).inc();
    return new AppError(code, message);
  }

  private isBot(userAgent: string | undefined): boolean {
    if (userAgent === undefined || userAgent === '') return false;
    if (userAgent.length > BOT_CACHE_MAX_UA_CHARS) return isbot(userAgent);
    let verdict = this.botVerdicts.get(userAgent);
    if (verdict === undefined) {
      verdict = isbot(userAgent);
      if (this.botVerdicts.size >= BOT_CACHE_ENTRIES) this.botVerdicts.clear();
      this.botVerdicts.set(userAgent, verdict);
    }
    return verdict;
  }
}

/** `Sec-Purpose: prefetch` (and `prefetch;prerender`), or the older `Purpose` / `X-Purpose`. */
function isPrefetch(req: IncomingMessage): boolean {
  const purpose = req.headers['sec-purpose'] ?? req.headers.purpose ?? req.headers['x-purpose'];
  return typeof purpose === 'string' && /prefetch|preview/i.test(purpose);
}
