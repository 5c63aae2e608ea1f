/**
 * The page's static assets, served by the node itself (no CDN, nothing fetched at run time).
 * Each is encoded once, with a strong ETag from its content, so browsers revalidate cheaply.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DASHBOARD_STYLE } from './dashboard-style.js';
import { PAGE_STYLE } from './style.js';

export const PAGE_SCRIPT_PATH = '/assets/live.js';
export const PAGE_STYLE_PATH = '/assets/page.css';
/** Browsers reuse an asset this long before revalidating it (a deploy changes it within minutes). */
export const ASSET_MAX_AGE_S = 300;

/** The tag other sites paste (count.js): served at the root, where its snippet points. */
export const TAG_SCRIPT_PATH = '/count.js';
export const DASHBOARD_SCRIPT_PATH = '/assets/dashboard.js';
export const DASHBOARD_STYLE_PATH = '/assets/dashboard.css';
/** uPlot (MIT, node_modules/uplot), served byte for byte from the node with its header; its licence beside it. */
export const UPLOT_SCRIPT_PATH = '/assets/uplot.min.js';
export const UPLOT_STYLE_PATH = '/assets/uplot.min.css';
export const UPLOT_LICENSE_PATH = '/assets/uplot.LICENSE.txt';

/** A file of the installed uPlot package (a dependency: production installs carry it). */
function readUplotFile(path: string): string {
  const file = createRequire(import.meta.url).resolve(`uplot/${path}`);
  return readFileSync(file, 'utf8');
}

/** uPlot's stylesheet carries no notice of its own: the script's header, and the licence's path, go on top. */
function uplotStyle(): string {
  const script = readUplotFile('dist/uPlot.iife.min.js');
  const header = /^\/\*![^*]*\*\//.exec(script)?.[0] ?? '/*! uPlot */';
  return `${header}\n/*! MIT License, Copyright (c) 2022 Leon Sorokin: ${UPLOT_LICENSE_PATH} */\n${readUplotFile('dist/uPlot.min.css')}`;
}

/**
 * The browser's scripts are files of their own beside this module (`live.js`, `count.js`): in
 * src/ when the TypeScript runs directly (vitest), in dist/ once built (scripts/build.mjs copies
 * them).
 */
export function readBrowserScript(name: string): string {
  const file = new URL(`./${name}`, import.meta.url);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`the browser script ${fileURLToPath(file)} could not be read (is dist/ built with npm run build?)`, { cause: error });
  }
}

/** The page's script as served. */
export function readPageScript(): string {
  return readBrowserScript('live.js');
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
    [TAG_SCRIPT_PATH, asset('text/javascript; charset=utf-8', readBrowserScript('count.js'))],
    [DASHBOARD_SCRIPT_PATH, asset('text/javascript; charset=utf-8', readBrowserScript('dashboard.js'))],
    [DASHBOARD_STYLE_PATH, asset('text/css; charset=utf-8', DASHBOARD_STYLE)],
    [UPLOT_SCRIPT_PATH, asset('text/javascript; charset=utf-8', readUplotFile('dist/uPlot.iife.min.js'))],
    [UPLOT_STYLE_PATH, asset('text/css; charset=utf-8', uplotStyle())],
    [UPLOT_LICENSE_PATH, asset('text/plain; charset=utf-8', readUplotFile('LICENSE'))],
  ]);
}
