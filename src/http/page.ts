/**
 * The HTML of `GET /` and `GET /pages/:page`: a server-rendered page that works with JavaScript
 * off (the count, who counted it, the cluster's nodes), which `/assets/live.js` then keeps up to
 * date from the live feed. Every value placed in the HTML goes through `escapeHtml`, whatever its
 * source: page names come from the URL, node names from peers. The script mirrors the two view
 * functions below (`replicaRows`, `clusterRows`) and writes with textContent only.
 */
import type { ClusterStatus, PeerStatus } from '../cluster-status.js';
import { PAGE_SCRIPT_PATH, PAGE_STYLE_PATH } from './page-assets/assets.js';
import { listedNodes } from './public-status.js';

/** The page `GET /` counts its own views under. */
export const HOME_PAGE = 'home';
/** Past this many replicas nobody knows any more, they are shown as one folded row. */
export const MAX_EARLIER_REPLICA_ROWS = 3;
/** Characters of a replica id shown for an unknown (earlier) replica. */
const SHORT_ID_CHARS = 8;

/**
 * The page's policy: scripts and styles from this node only, no inline code, connections back to
 * this node only (its live feed). Injected markup could not run even if escaping ever failed.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface PageModel {
  readonly page: string;
  readonly count: number;
  /** The page's slots: replica → its part of the count. */
  readonly replicas: Readonly<Record<string, number>>;
  /** The `Counter-Session` token of this view, for the script to carry to the live feed. */
  readonly session?: string;
  /** The page's reset epoch the count and slots are in (src/crdt/reset.ts); absent: 0. */
  readonly epoch?: number;
  readonly status: ClusterStatus;
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

const NUMBER_FORMAT = new Intl.NumberFormat('en-US');

/** Counts as shown on the page (the script formats the same way). */
export function formatCount(count: number): string {
  return NUMBER_FORMAT.format(count);
}

export interface ReplicaRow {
  readonly label: string;
  readonly count: number;
  /** The replica id; absent on the folded row. */
  readonly replicaId?: string;
  /** False for replicas no node claims now (an old id of a restarted or restored node). */
  readonly known: boolean;
}

/** Replica id → node name, from membership and peers (membership wins). */
export function nodeNames(status: ClusterStatus): Map<string, string> {
  const names = new Map<string, string>();
  for (const peer of status.peers) if (peer.replicaId !== undefined && peer.name !== undefined) names.set(peer.replicaId, peer.name);
  for (const member of status.membership) names.set(member.replicaId, member.name);
  names.set(status.node.replicaId, status.node.name);
  return names;
}

/** The per-node breakdown: known replicas by name, unknown ones as "earlier replica" rows (folded past a few). */
export function replicaRows(replicas: Readonly<Record<string, number>>, status: ClusterStatus): ReplicaRow[] {
  const names = nodeNames(status);
  const known: ReplicaRow[] = [];
  const earlier: ReplicaRow[] = [];
  for (const [replicaId, count] of Object.entries(replicas)) {
    const name = names.get(replicaId);
    if (name !== undefined) known.push({ label: name, count, replicaId, known: true });
    else earlier.push({ label: `earlier replica ${replicaId.slice(0, SHORT_ID_CHARS)}`, count, replicaId, known: false });
  }
  const byCount = (a: ReplicaRow, b: ReplicaRow) => b.count - a.count || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
  known.sort(byCount);
  earlier.sort(byCount);
  if (earlier.length > MAX_EARLIER_REPLICA_ROWS) {
    const count = earlier.reduce((sum, row) => sum + row.count, 0);
    return [...known, { label: `${earlier.length} earlier replicas`, count, known: false }];
  }
  return [...known, ...earlier];
}

export type NodeState = 'self' | 'live' | 'connecting' | 'unreachable';

export interface NodeRow {
  readonly name: string;
  readonly replicaId?: string;
  readonly state: NodeState;
  /** The state in words, as shown. */
  readonly stateText: string;
  /** Whether it is reached directly (this node: its region). */
  readonly detail: string;
}

const STATE_TEXT: Readonly<Record<NodeState, string>> = { self: 'this node', live: 'live', connecting: 'connecting', unreachable: 'unreachable' };

// The page is public: it says whether a node is reached, never how far behind it is, where it
// lives or what went wrong (those are on the cluster port; see public-status.ts).
function lagText(peer: PeerStatus | undefined): string {
  return peer === undefined || peer.state !== 'connected' ? 'reached through other nodes' : 'connected';
}

function downText(): string {
  return 'no answer';
}

/**
 * The cluster's nodes: this one, every member (live, or unreachable when its link is down), and
 * peers that are not members (yet, or any more: a stopped node leaves the membership but stays a
 * peer this node keeps dialling). A peer never reached and with no error yet is `connecting`.
 */
export function clusterRows(status: ClusterStatus): NodeRow[] {
  const row = (name: string, replicaId: string | undefined, state: NodeState, detail: string): NodeRow => ({
    name,
    ...(replicaId !== undefined ? { replicaId } : {}),
    state,
    stateText: STATE_TEXT[state],
    detail,
  });
  const others = listedNodes(status).map((node) =>
    row(node.name, node.replicaId, node.state, node.state === 'live' ? lagText(node.peer) : node.state === 'connecting' ? '' : downText()),
  );
  return [row(status.node.name, status.node.replicaId, 'self', status.node.region ?? ''), ...others];
}

function renderReplicaRows(rows: readonly ReplicaRow[]): string {
  if (rows.length === 0) return '<tr class="empty"><td colspan="2">No views yet.</td></tr>';
  return rows
    .map(
      (r) =>
        `<tr${r.known ? '' : ' class="earlier"'}${r.replicaId !== undefined ? ` data-replica="${escapeHtml(r.replicaId)}"` : ''}>` +
        `<th scope="row">${escapeHtml(r.label)}</th><td>${escapeHtml(formatCount(r.count))}</td></tr>`,
    )
    .join('\n          ');
}

function renderNodeRows(rows: readonly NodeRow[]): string {
  return rows
    .map(
      (r) =>
        `<li data-state="${r.state}"${r.replicaId !== undefined ? ` data-replica="${escapeHtml(r.replicaId)}"` : ''}>` +
        `<span class="node-name">${escapeHtml(r.name)}</span> ` +
        `<span class="state">${escapeHtml(r.stateText)}</span> ` +
        `<span class="detail">${escapeHtml(r.detail)}</span></li>`,
    )
    .join('\n        ');
}

/**
 * The start of every HTML page the node serves, up to its own links and scripts: the head's
 * metadata, the title (escaped here) and the shared stylesheet. The caller closes `</head>`.
 */
export function htmlHead(title: string): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="color-scheme" content="light dark">
    <title>${escapeHtml(title)}</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="${PAGE_STYLE_PATH}">`;
}

export function renderPage(model: PageModel): string {
  const { status } = model;
  const node = status.node;
  return `${htmlHead(`${model.page} · distributed-sqlite`)}
    <script src="${PAGE_SCRIPT_PATH}" defer></script>
  </head>
  <body>
    <header>
      <p class="brand">distributed-sqlite</p>
      <p id="feed-status" class="feed" role="status" data-state="static">Not live: showing the count when the page loaded.</p>
    </header>
    <main id="live" data-page="${escapeHtml(model.page)}" data-self="${escapeHtml(node.replicaId)}" data-replicas="${escapeHtml(JSON.stringify(model.replicas))}" data-epoch="${model.epoch ?? 0}"${model.session !== undefined ? ` data-session="${escapeHtml(model.session)}"` : ''}>
      <section aria-labelledby="total-heading">
        <h1 id="total-heading">Views of <q id="page-name">${escapeHtml(model.page)}</q></h1>
        <p class="total"><output id="count" aria-live="polite" aria-atomic="true">${escapeHtml(formatCount(model.count))}</output> <span>views, counted on every node</span></p>
      </section>
      <section aria-labelledby="replicas-heading">
        <h2 id="replicas-heading">Counted by</h2>
        <table>
          <thead><tr><th scope="col">Node</th><th scope="col">Views</th></tr></thead>
          <tbody id="replicas">
          ${renderReplicaRows(replicaRows(model.replicas, status))}
          </tbody>
        </table>
      </section>
      <section aria-labelledby="nodes-heading">
        <h2 id="nodes-heading">Cluster</h2>
        <ul id="nodes" class="nodes">
        ${renderNodeRows(clusterRows(status))}
        </ul>
      </section>
    </main>
    <footer>
      <p>Served by <span id="served-by">${escapeHtml(node.name)}</span>${node.region !== undefined ? ` in ${escapeHtml(node.region)}` : ''}, version ${escapeHtml(node.version)}. Each node keeps a G-Counter in SQLite; merges never lose a view.</p>
      <p><a href="/dashboard">Dashboard</a>: views and visitors over time, top pages (counts nothing).</p>
    </footer>
  </body>
</html>
`;
}
