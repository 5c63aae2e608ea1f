/**
 * Views over time, unique visitors and top pages (README "Views over time"): three public reads
 * that count nothing. Times are ISO 8601 or epoch milliseconds; a range is `[from, to)`, every
 * step inside it a point (zeros included), at most MAX_SERIES_POINTS of them; a top-pages range
 * at most MAX_TOP_RANGE_DAYS. Every bad input is a 400 with a stable code (bad_step, bad_time,
 * bad_range, too_many_points, range_too_long, bad_page_name, bad_request) and reads nothing.
 */
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { DAY_MS, HOUR_MS } from '../crdt/series.js';
import { AppError } from '../errors.js';
import type { PageName } from '../ids.js';
import type { SeriesStep, Store } from '../store/store.js';

export const MAX_SERIES_POINTS = 2000;
/** Longest /api/top range: its cost is per page, but an answer over decades says nothing useful. */
export const MAX_TOP_RANGE_DAYS = 2000;
export const DEFAULT_TOP_LIMIT = 10;
export const MAX_TOP_LIMIT = 100;
/** Default ranges: the last 24 hours, the last 30 days (the current bucket included). */
const DEFAULT_POINTS: Record<SeriesStep, number> = { hour: 24, day: 30 };
const STEP_MS: Record<SeriesStep, number> = { hour: HOUR_MS, day: DAY_MS };
/** Times accepted: the years 1970 to 9999. */
const MAX_TIME_MS = Date.UTC(9999, 11, 31);

function single(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new AppError('bad_request', `give "${name}" at most once`);
  return value === '' ? undefined : value;
}

/** Whether an ISO date's day exists in its month (Date.parse takes 2026-02-30 for March 2). */
function realDate(text: string): boolean {
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** A time from the query: ISO 8601 or epoch ms; a 400 for anything else. */
export function parseTime(text: string, name: string): number {
  const iso = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(text);
  const ms = /^\d{1,15}$/.test(text) ? Number(text) : iso && realDate(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_TIME_MS) {
    throw new AppError('bad_time', `"${name}" must be an ISO 8601 time (2026-12-01T13:00:00Z) or epoch milliseconds from 1970 to 9999, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return ms;
}

function parseStep(text: string | undefined): SeriesStep {
  if (text === undefined) return 'hour';
  if (text === 'hour' || text === 'day') return text;
  throw new AppError('bad_step', `"step" must be hour or day, got ${JSON.stringify(text.slice(0, 20))}`);
}

/** The buckets `[from, to)` of the range in `step`s since the epoch: from rounded down, to rounded up. */
export function bucketRange(ctx: Context, step: SeriesStep, now: number): { from: number; to: number } {
  const size = STEP_MS[step];
  const fromText = single(ctx, 'from');
  const toText = single(ctx, 'to');
  const to = toText === undefined ? Math.floor(now / size) + 1 : Math.ceil(parseTime(toText, 'to') / size);
  const from = fromText === undefined ? to - DEFAULT_POINTS[step] : Math.floor(parseTime(fromText, 'from') / size);
  if (from >= to) throw new AppError('bad_range', '"from" must be before "to"');
  if (to - from > MAX_SERIES_POINTS) throw new AppError('too_many_points', `the range holds ${to - from} ${step}s; at most ${MAX_SERIES_POINTS} points per request: narrow it or use step=day`);
  return { from, to };
}

function seriesBody(store: Store, step: SeriesStep, range: { from: number; to: number }, page?: PageName) {
  const size = STEP_MS[step];
  const points = store.series({ ...(page === undefined ? {} : { page }), step, from: range.from, to: range.to }).map((point) => {
    const t = new Date(point.t * size).toISOString();
    return step === 'day' ? { t, views: point.views, visitors: point.visitors ?? 0 } : { t, views: point.views };
  });
  return {
    ...(page === undefined ? {} : { page }),
    step,
    from: new Date(range.from * size).toISOString(),
    to: new Date(range.to * size).toISOString(),
    points,
  };
}

export interface SeriesRouteDeps {
  readonly store: Store;
  readonly now?: () => number;
  /**
   * Whether `page` could be a page here: it exists, or its name matches PAGE_PATTERN (true for
   * every name without one). A name that cannot be a page is a 400, not a run of zeros.
   */
  readonly mayBePage?: (page: PageName) => boolean;
}

export function mountSeriesRoutes(router: Router, deps: SeriesRouteDeps, pageFromPath: (path: string) => PageName): void {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const mayBePage = deps.mayBePage ?? (() => true);
  const noStore = (ctx: Context): void => {
    ctx.set('Cache-Control', 'no-store');
  };

  router.get('/api/pages/:page/series', (ctx: Context) => {
    const page = pageFromPath(ctx.path);
    if (!mayBePage(page)) throw new AppError('bad_page_name', 'no such page, and its name does not match PAGE_PATTERN, so it can never be counted here');
    const step = parseStep(single(ctx, 'step'));
    const range = bucketRange(ctx, step, now());
    noStore(ctx);
    ctx.body = seriesBody(store, step, range, page);
  });

  router.get('/api/series', (ctx: Context) => {
    const step = parseStep(single(ctx, 'step'));
    const range = bucketRange(ctx, step, now());
    noStore(ctx);
    ctx.body = seriesBody(store, step, range);
  });

  router.get('/api/top', (ctx: Context) => {
    const limitText = single(ctx, 'limit');
    const limit = limitText === undefined ? DEFAULT_TOP_LIMIT : /^\d{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN;
    if (!(limit >= 1 && limit <= MAX_TOP_LIMIT)) throw new AppError('bad_request', `limit must be a whole number from 1 to ${MAX_TOP_LIMIT}`);
    // Hours, so a range need not start at midnight; the default is the last 30 days.
    const fromText = single(ctx, 'from');
    const toText = single(ctx, 'to');
    const toHour = toText === undefined ? Math.floor(now() / HOUR_MS) + 1 : Math.ceil(parseTime(toText, 'to') / HOUR_MS);
    const fromHour = fromText === undefined ? toHour - 30 * 24 : Math.floor(parseTime(fromText, 'from') / HOUR_MS);
    if (fromHour >= toHour) throw new AppError('bad_range', '"from" must be before "to"');
    if (toHour - fromHour > MAX_TOP_RANGE_DAYS * 24) throw new AppError('range_too_long', `the range spans ${Math.ceil((toHour - fromHour) / 24)} days; top pages take at most ${MAX_TOP_RANGE_DAYS}`);
    noStore(ctx);
    ctx.body = {
      from: new Date(fromHour * HOUR_MS).toISOString(),
      to: new Date(toHour * HOUR_MS).toISOString(),
      pages: store.top({ fromHour, toHour, limit }).map((row) => ({ page: row.page, views: row.count })),
    };
  });
}
