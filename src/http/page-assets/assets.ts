/**
 * The page's static assets, served by the node itself (no CDN, nothing fetched at run time).
 * Each is encoded once, with a strong ETag from its content, so browsers revalidate cheaply.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PAGE_STYLE } from './style.js';

export const PAGE_SCRIPT_PATH = '/assets/live.js';
export const PAGE_STYLE_PATH = '/assets/page.css';
/** Browsers reuse an asset this long before revalidating it (a deploy changes it within minutes). */
export const ASSET_MAX_AGE_S = 300;

/**
 * The page's script is browser code in a file of its own, `live.js` beside this module: in src/
 * when the TypeScript runs directly (vitest), in dist/ once built (scripts/build.mjs copies it).
 */
const PAGE_SCRIPT_FILE = new URL('./live.js', import.meta.url);

/** The page's script as served. */
export function readPageScript(): string {
  try {
    return readFileSync(PAGE_SCRIPT_FILE, 'utf8');
  } catch (error) {
    throw new Error(`the page script ${fileURLToPath(PAGE_SCRIPT_FILE)} could not be read (is dist/ built with npm run build?)`, { cause: error });
  }
}

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly etag: string;
}

function asset(type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** Path → asset. Built per call of `pageAssets()` (no module-level state). */
export function pageAssets(): ReadonlyMap<string, Asset> {
  return new Map([
    [PAGE_SCRIPT_PATH, asset('text/javascript; charset=utf-8', readPageScript())],
    [PAGE_STYLE_PATH, asset('text/css; charset=utf-8', PAGE_STYLE)],
  ]);
}
