/**
 * The page's stylesheet, served at `/assets/page.css`. Kept in a module (not a .css file) so the
 * compiled `dist/` carries it with no build step. Colours meet WCAG AA contrast in both schemes;
 * states are words first, colour second.
 */
export const PAGE_STYLE = `
:root {
  --bg: #ffffff; --fg: #1a1a1a; --muted: #595959; --rule: #d0d0d0; --accent: #0b57d0;
  --live: #0a6b2d; --down: #a3160e; --wait: #7a4b00; --panel: #f4f4f4;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #121212; --fg: #ececec; --muted: #b3b3b3; --rule: #3a3a3a; --accent: #8ab4f8;
    --live: #6fdc8c; --down: #ff8a80; --wait: #ffcc66; --panel: #1e1e1e;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0 auto; max-width: 42rem; padding: 1rem 1rem 2rem;
  font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--fg);
}
header { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; align-items: baseline; justify-content: space-between; border-bottom: 1px solid var(--rule); }
.brand { margin: 0.5rem 0; font-weight: 600; }
.feed { margin: 0.5rem 0; font-size: 0.875rem; color: var(--muted); }
.feed::before { content: ""; display: inline-block; width: 0.6em; height: 0.6em; margin-right: 0.4em; border-radius: 50%; background: var(--muted); vertical-align: 0.05em; }
.feed[data-state="live"] { color: var(--live); }
.feed[data-state="live"]::before { background: var(--live); }
.feed[data-state="offline"] { color: var(--down); }
.feed[data-state="offline"]::before { background: var(--down); }
.feed[data-state="connecting"]::before { background: var(--wait); }
h1 { font-size: 1.25rem; margin: 1.5rem 0 0; font-weight: 600; overflow-wrap: anywhere; }
h2 { font-size: 1rem; margin: 2rem 0 0.5rem; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); }
.total { margin: 0.25rem 0 0; display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.5rem; }
#count { font-size: clamp(2.75rem, 12vw, 4.5rem); font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
.total span { color: var(--muted); }
main[data-feed="offline"] #count { opacity: 0.6; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.4rem 0.5rem; border-bottom: 1px solid var(--rule); text-align: left; overflow-wrap: anywhere; }
thead th { font-size: 0.875rem; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 500; }
td { text-align: right; width: 8rem; }
thead th:last-child { text-align: right; }
tr.earlier th { color: var(--muted); font-style: italic; font-weight: 400; }
.nodes { list-style: none; margin: 0; padding: 0; }
.nodes li { display: flex; flex-wrap: wrap; gap: 0 0.75rem; align-items: baseline; padding: 0.5rem; border-bottom: 1px solid var(--rule); }
.node-name { font-weight: 600; overflow-wrap: anywhere; }
.state { font-size: 0.875rem; font-weight: 600; }
.state::before { content: "●"; margin-right: 0.3em; }
li[data-state="self"] .state, li[data-state="live"] .state { color: var(--live); }
li[data-state="unreachable"] .state { color: var(--down); }
li[data-state="connecting"] .state { color: var(--wait); }
.detail { font-size: 0.875rem; color: var(--muted); overflow-wrap: anywhere; }
footer { margin-top: 2.5rem; font-size: 0.875rem; color: var(--muted); }
@media (prefers-reduced-motion: no-preference) {
  #count.bumped { animation: bump 0.4s ease-out; }
  @keyframes bump { from { color: var(--accent); } to { color: var(--fg); } }
}
`;
