/**
 * The dashboard's stylesheet, served at `/assets/dashboard.css` after the page's (`page.css`:
 * colours, type, the node list). The charts read their colours from the custom properties here
 * (`--chart-views`, `--chart-visitors`), so dark mode recolours them too.
 */
export const DASHBOARD_STYLE = `
:root { --chart-views: #0b57d0; --chart-visitors: #b3261e; --chart-fill: rgba(11, 87, 208, 0.12); }
@media (prefers-color-scheme: dark) {
  :root { --chart-views: #8ab4f8; --chart-visitors: #f2b8b5; --chart-fill: rgba(138, 180, 248, 0.16); }
}
body.dashboard { max-width: 64rem; }
.controls { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; margin: 1rem 0 0; }
.controls fieldset { border: 0; margin: 0; padding: 0; display: flex; gap: 0.25rem; align-items: center; }
.controls legend { float: left; margin-right: 0.5rem; font-size: 0.875rem; color: var(--muted); }
.controls button, .page-link {
  font: inherit; font-size: 0.875rem; color: var(--fg); background: var(--panel);
  border: 1px solid var(--rule); border-radius: 0.375rem; padding: 0.3rem 0.7rem; cursor: pointer;
}
.controls button[aria-pressed="true"] { background: var(--accent); border-color: var(--accent); color: var(--bg); font-weight: 600; }
.controls button:disabled { opacity: 0.45; cursor: not-allowed; }
.totals { display: flex; flex-wrap: wrap; gap: 0.5rem 2.5rem; margin: 1rem 0 0.5rem; }
.totals div { min-width: 8rem; }
.totals dt { font-size: 0.875rem; color: var(--muted); }
.totals dd { margin: 0; font-size: clamp(1.75rem, 7vw, 2.5rem); font-weight: 700; line-height: 1.2; font-variant-numeric: tabular-nums; }
.totals dd.na { font-size: 1rem; font-weight: 400; color: var(--muted); line-height: 2.6; }
.range-text { font-size: 0.875rem; color: var(--muted); margin: 0; }
.chart { width: 100%; min-height: 12rem; margin-top: 0.5rem; }
.chart .u-legend { font-size: 0.8125rem; color: var(--fg); width: auto; }
.chart .u-legend th, .chart .u-legend td { border: 0; width: auto; padding: 0 0.25rem; text-align: left; font-variant-numeric: tabular-nums; }
.chart .u-select { background: var(--chart-fill); }
#top td.spark { width: 8.5rem; padding: 0.2rem 0.5rem; }
#top td.views { width: 6rem; }
#top tbody th { padding: 0; }
.page-link {
  display: block; width: 100%; text-align: left; border: 0; border-radius: 0; background: none;
  padding: 0.4rem 0.5rem; color: var(--accent); overflow-wrap: anywhere; text-decoration: underline;
}
.page-link[aria-current="true"] { font-weight: 700; }
.spark-chart { width: 8rem; height: 1.75rem; }
#top tr.empty td { text-align: left; width: auto; color: var(--muted); }
.detail-head { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: 0.5rem; }
.detail-head button { font: inherit; font-size: 0.875rem; background: none; border: 0; color: var(--accent); cursor: pointer; text-decoration: underline; }
#detail-heading { text-transform: none; letter-spacing: 0; font-size: 1.125rem; color: var(--fg); }
#detail-name { overflow-wrap: anywhere; }
@media (max-width: 30rem) {
  #top .spark { display: none; }
  .totals { gap: 0.5rem 1.5rem; }
}
`;
