/**
 * The operator's routes (README, "Admin"): reset a page to zero, delete a page, delete every page
 * under a prefix. Each is a reset in the CRDT (src/crdt/reset.ts): a local commit that replicates
 * like any other, so it converges on every node and in every backup. Every route checks the
 * privilege first, then the input, then acts.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { AppError } from '../errors.js';
import type { PageName } from '../ids.js';
import { MAX_RESET_PAGES, type PageReset, type Store } from '../store/store.js';
import { checkPageName, readJsonBody } from './body.js';
import { requirePrivileged } from './privileged.js';

export interface AdminDeps {
  readonly store: Store;
  readonly maxBodyBytes: number;
}

const ADMIN_PAGE = /^\/api\/admin\/pages\/([^/]+)/;

export function mountAdminRoutes(router: Router, deps: AdminDeps, pageOf: (raw: string) => PageName): void {
  const { store, maxBodyBytes } = deps;
  const page = (ctx: Context): PageName => {
    const raw = ADMIN_PAGE.exec(ctx.path)?.[1];
    if (raw === undefined) throw new AppError('bad_page_name', 'the path has no page name');
    return pageOf(raw);
  };

  router.post('/api/admin/pages/:page/reset', async (ctx: Context) => {
    requirePrivileged(ctx);
    const name = page(ctx);
    const [reset] = await resetWhenWritable(store, [name]);
    ctx.body = { page: name, count: 0, epoch: reset?.epoch ?? 0 };
  });

  router.delete('/api/admin/pages/:page', async (ctx: Context) => {
    requirePrivileged(ctx);
    const name = page(ctx);
    const [reset] = await resetWhenWritable(store, [name]);
    ctx.body = { page: name, deleted: true, epoch: reset?.epoch ?? 0 };
  });

  router.post('/api/admin/delete-prefix', async (ctx: Context) => {
    requirePrivileged(ctx);
    const body = await readJsonBody(ctx.req, maxBodyBytes);
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !('prefix' in body)) {
      throw new AppError('bad_request', 'the body must be a JSON object like {"prefix": "/blog/"}');
    }
    const prefix = checkPageName((body as { prefix: unknown }).prefix, 'prefix');
    ctx.body = { prefix, deleted: await deletePrefix(store, prefix) };
  });
}

/** Resets `pages` once no spread commit holds the store's writes (Store.writesHeld). */
async function resetWhenWritable(store: Store, pages: readonly PageName[]): Promise<PageReset[]> {
  for (let held = store.writesHeld?.(); held !== undefined; held = store.writesHeld?.()) await held;
  return store.reset(pages);
}

/**
 * Resets every page this node lists under `prefix`, MAX_RESET_PAGES per commit (each commit's
 * delta stays one small frame), yielding to the event loop between commits so a large prefix
 * does not stall the node. Pages other nodes count concurrently and this node has not seen yet
 * are not reset (a reset may only discard what it saw). Returns how many pages were reset.
 */
export async function deletePrefix(store: Store, prefix: PageName): Promise<number> {
  let deleted = 0;
  let after: PageName | undefined;
  // The prefix itself is a page name too; listPages({after}) starts strictly after it.
  const first = store.count(prefix) > 0 ? [prefix] : [];
  if (first.length > 0) deleted += (await resetWhenWritable(store, first)).length;
  after = prefix;
  for (;;) {
    const batch = store.listPages({ after, limit: MAX_RESET_PAGES });
    const matching = batch.filter((row) => row.page.startsWith(prefix)).map((row) => row.page);
    if (matching.length > 0) deleted += (await resetWhenWritable(store, matching)).length;
    // Pages are in UTF-8 byte order, so the pages under a prefix are contiguous after it.
    if (matching.length < batch.length || batch.length < MAX_RESET_PAGES) return deleted;
    after = batch[batch.length - 1]?.page;
    await yieldToEventLoop();
  }
}
