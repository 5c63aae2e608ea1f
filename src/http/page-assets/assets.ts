/**
 * The page's static assets, served by the node itself (no CDN, nothing fetched at run time).
 * Each is encoded once, with a strong ETag from its content, so browsers revalidate cheaply.
 */
import { createHash } from 'node:crypto';
import { PAGE_SCRIPT } from './live-script.js';
import { PAGE_STYLE } from './style.js';

export const PAGE_SCRIPT_PATH = '/assets/live.js';
export const PAGE_STYLE_PATH = '/assets/page.css';
/** Browsers reuse an asset this long before revalidating it (a deploy changes it within minutes). */
export const ASSET_MAX_AGE_S = 300;

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
    [PAGE_SCRIPT_PATH, asset('text/javascript; charset=utf-8', PAGE_SCRIPT)],
    [PAGE_STYLE_PATH, asset('text/css; charset=utf-8', PAGE_STYLE)],
  ]);
}
