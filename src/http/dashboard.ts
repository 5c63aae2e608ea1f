/**
 * `GET /dashboard`: the site owner's view (README "Dashboard"). It counts nothing. The HTML is a
 * shell; `/assets/dashboard.js` fills it from the public read APIs (`/api/series`, `/api/top`,
 * `/api/pages/:page/series`, `/api/cluster`) and polls them while the tab is visible, so a view
 * counted on any node shows within a poll of reaching this one. Charts are uPlot, served by the
 * node itself; everything runs under the page's strict CSP (no inline script or style).
 */
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { DASHBOARD_SCRIPT_PATH, DASHBOARD_STYLE_PATH, UPLOT_LICENSE_PATH, UPLOT_SCRIPT_PATH, UPLOT_STYLE_PATH } from './page-assets/assets.js';
import { escapeHtml, htmlHead, PAGE_CSP } from './page.js';

export const DASHBOARD_PATH = '/dashboard';

export interface DashboardModel {
  /** This node's name, shown in the footer. */
  readonly nodeName: string;
  readonly version: string;
}

export function renderDashboard(model: DashboardModel): string {
  return `${htmlHead('Dashboard · distributed-sqlite')}
    <link rel="stylesheet" href="${UPLOT_STYLE_PATH}">
    <link rel="stylesheet" href="${DASHBOARD_STYLE_PATH}">
    <script src="${UPLOT_SCRIPT_PATH}" defer></script>
    <script src="${DASHBOARD_SCRIPT_PATH}" defer></script>
  </head>
  <body class="dashboard">
    <header>
      <p class="brand">distributed-sqlite · dashboard</p>
      <p id="feed-status" class="feed" role="status" data-state="static">Loading…</p>
    </header>
    <main id="dashboard">
      <noscript><p>The dashboard draws its charts with JavaScript. The same figures are JSON at <code>/api/series</code>, <code>/api/top</code> and <code>/api/pages/&lt;page&gt;/series</code>.</p></noscript>
      <div class="controls">
        <fieldset id="ranges"><legend>Range</legend>
          <button type="button" data-range="24h" aria-pressed="false">24 h</button>
          <button type="button" data-range="7d" aria-pressed="true">7 days</button>
          <button type="button" data-range="30d" aria-pressed="false">30 days</button>
        </fieldset>
        <fieldset id="steps"><legend>Per</legend>
          <button type="button" data-step="hour" aria-pressed="false">hour</button>
          <button type="button" data-step="day" aria-pressed="true">day</button>
        </fieldset>
      </div>
      <section id="site" aria-labelledby="site-heading">
        <h1 id="site-heading">All pages</h1>
        <p class="range-text" id="site-range"></p>
        <dl class="totals">
          <div><dt>Views</dt><dd id="site-views">–</dd></div>
          <div><dt>Unique visitors, summed per day</dt><dd id="site-visitors">–</dd></div>
        </dl>
        <div id="site-chart" class="chart" role="img" aria-label="Views and visitors of all pages over time"></div>
      </section>
      <section id="detail" aria-labelledby="detail-heading" hidden>
        <div class="detail-head">
          <h2 id="detail-heading">Page <q id="detail-name"></q></h2>
          <button type="button" id="detail-close">Close</button>
        </div>
        <dl class="totals">
          <div><dt>Views</dt><dd id="detail-views">–</dd></div>
          <div><dt>Unique visitors, summed per day</dt><dd id="detail-visitors">–</dd></div>
        </dl>
        <div id="detail-chart" class="chart" role="img" aria-label="Views and visitors of the page over time"></div>
      </section>
      <section aria-labelledby="top-heading">
        <h2 id="top-heading">Top pages</h2>
        <table id="top">
          <thead><tr><th scope="col">Page</th><th scope="col">Views</th><th scope="col" class="spark">Trend</th></tr></thead>
          <tbody id="top-rows"><tr class="empty"><td colspan="3">Loading…</td></tr></tbody>
        </table>
      </section>
      <section aria-labelledby="nodes-heading">
        <h2 id="nodes-heading">Cluster</h2>
        <ul id="nodes" class="nodes"></ul>
      </section>
    </main>
    <footer>
      <p>Served by ${escapeHtml(model.nodeName)}, version ${escapeHtml(model.version)}. Reading this dashboard counts no view. Times are UTC. Charts by <a href="${UPLOT_LICENSE_PATH}">uPlot</a> (MIT).</p>
    </footer>
  </body>
</html>
`;
}

export function mountDashboard(router: Router, model: () => DashboardModel): void {
  router.get(DASHBOARD_PATH, (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', PAGE_CSP);
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = renderDashboard(model());
  });
}
