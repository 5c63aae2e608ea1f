/**
 * The HTML of `GET /`: a plain server-rendered page that works with JavaScript off. Every value
 * placed in it goes through `escapeHtml`, whatever its source (node names come from config and
 * from peers).
 */
import type { MemberStatus, NodeInfo } from './cluster-status.js';

/** The page `GET /` counts its own views under. */
export const HOME_PAGE = 'home';

export interface HomePageModel {
  readonly page: string;
  readonly count: number;
  readonly node: Pick<NodeInfo, 'name' | 'region' | 'version'>;
  readonly membership: readonly MemberStatus[];
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

export function renderHomePage(model: HomePageModel): string {
  const members = model.membership
    .map(
      (m) =>
        `<li data-replica="${escapeHtml(m.replicaId)}">${escapeHtml(m.name)}` +
        `${m.region !== undefined ? ` <small>(${escapeHtml(m.region)})</small>` : ''}` +
        ` — ${m.live ? 'live' : 'gone'}</li>`,
    )
    .join('\n        ');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>distributed-sqlite</title>
    <style>
      body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }
      .count { font-size: 3rem; font-weight: bold; font-variant-numeric: tabular-nums; }
      small { color: #666; }
    </style>
  </head>
  <body>
    <h1>distributed-sqlite</h1>
    <p>This page has been viewed</p>
    <p class="count" id="count" data-page="${escapeHtml(model.page)}">${escapeHtml(model.count)}</p>
    <p>times, counted by a G-Counter in SQLite on every node of the cluster.</p>
    <h2>Nodes</h2>
    <ul id="members">
        ${members}
    </ul>
    <p><small>Served by ${escapeHtml(model.node.name)}${model.node.region !== undefined ? ` in ${escapeHtml(model.node.region)}` : ''}, version ${escapeHtml(model.node.version)}.</small></p>
  </body>
</html>
`;
}
