/**
 * The live feed's query: which pages a client follows, how often, and whether it wants cluster
 * updates. Validated before the upgrade, so a bad one is an HTTP 400 with the usual JSON error.
 *
 *   GET /api/live?page=home&page=about&interval=250&cluster=1
 */
import { AppError } from '../errors.js';
import type { PageName } from '../ids.js';
import { checkPageName } from './body.js';

export const MAX_PAGES_PER_CLIENT = 100;
export const DEFAULT_LIVE_INTERVAL_MS = 250;
export const MAX_LIVE_INTERVAL_MS = 10_000;
/** Longest query string read: 100 pages of 256 bytes, every byte percent-encoded, fit. */
const MAX_QUERY_BYTES = 80 * 1024;
/**
 * The HTTP server's header limit must let such a query through: Node's default (16 KiB) would
 * answer 431 to a client subscribing to 100 long page names. `node.ts` creates its server with it.
 */
export const LIVE_MAX_HEADER_BYTES = 96 * 1024;

export interface LiveQuery {
  readonly pages: readonly PageName[];
  /** A page is sent to this client at most once per interval. */
  readonly intervalMs: number;
  readonly cluster: boolean;
  /** A `Counter-Session` token (`session=`), verified by the feed: its pages are never shown lower. */
  readonly session?: string;
}

/** Splits and strictly decodes a query string; a malformed escape is a 400, not a guess. */
function queryPairs(search: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of search.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    try {
      pairs.push([decodeURIComponent(rawKey.replace(/\+/g, ' ')), decodeURIComponent(rawValue.replace(/\+/g, ' '))]);
    } catch {
      throw new AppError('bad_request', `the query has a malformed percent-encoding near ${JSON.stringify(part.slice(0, 40))}`);
    }
  }
  return pairs;
}

/** The feed's query (`page` repeated, `interval`, `cluster`) from a request URL, validated. */
export function parseLiveQuery(url: string): LiveQuery {
  const mark = url.indexOf('?');
  const search = mark === -1 ? '' : url.slice(mark + 1);
  if (search.length > MAX_QUERY_BYTES) throw new AppError('bad_request', `the query is longer than ${MAX_QUERY_BYTES} bytes`);
  const pages = new Set<PageName>();
  let interval: string | undefined;
  let cluster: string | undefined;
  let session: string | undefined;
  for (const [key, value] of queryPairs(search)) {
    if (key === 'page') {
      pages.add(checkPageName(value, 'page'));
      if (pages.size > MAX_PAGES_PER_CLIENT) throw new AppError('bad_request', `subscribe to at most ${MAX_PAGES_PER_CLIENT} pages per connection`);
    } else if (key === 'interval') {
      if (interval !== undefined) throw new AppError('bad_request', 'give "interval" at most once');
      interval = value;
    } else if (key === 'session') {
      if (session !== undefined) throw new AppError('bad_request', 'give "session" at most once');
      session = value;
    } else if (key === 'cluster') {
      if (cluster !== undefined) throw new AppError('bad_request', 'give "cluster" at most once');
      cluster = value;
    }
    // Other keys (cache busters and the like) are ignored.
  }
  if (pages.size === 0) throw new AppError('bad_request', 'name at least one page: /api/live?page=home');
  let intervalMs = DEFAULT_LIVE_INTERVAL_MS;
  if (interval !== undefined) {
    intervalMs = /^\d{1,5}$/.test(interval) ? Number(interval) : Number.NaN;
    if (!(intervalMs >= 0 && intervalMs <= MAX_LIVE_INTERVAL_MS)) {
      throw new AppError('bad_request', `interval must be a whole number of milliseconds from 0 to ${MAX_LIVE_INTERVAL_MS}`);
    }
  }
  if (cluster !== undefined && cluster !== '0' && cluster !== '1') throw new AppError('bad_request', 'cluster must be 1 (send cluster updates) or 0');
  return { pages: [...pages], intervalMs, cluster: cluster === '1', ...(session !== undefined && session !== '' ? { session } : {}) };
}
