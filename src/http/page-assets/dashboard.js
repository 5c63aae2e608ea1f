/**
 * The dashboard's script, served at `/assets/dashboard.js` (HTML: `../dashboard.ts`). Reads the
 * public read APIs of the node it came from and polls them every POLL_MS while the tab is shown:
 *   GET /api/series?step&from&to            the site's views (and daily visitors) → the big chart
 *   GET /api/top?from&to&limit              top pages → the table, each with a sparkline
 *   GET /api/pages/:page/series?step&from&to  a sparkline, and the chart of the page clicked
 *   GET /api/cluster                        the nodes
 * None of them counts a view. Every value is checked before use and written with textContent.
 * Charts are uPlot (loaded before this script); their colours come from the stylesheet's custom
 * properties and follow prefers-color-scheme. Plain ES2019, a classic script, type-checked by
 * tsc (tsconfig.browser.json).
 *
 * Longer than 300 lines on purpose: the browser loads it as one file (one request, no bundler), and
 * much of it is the JSDoc types the checker reads.
 */
(function () {
  'use strict';
  const POLL_MS = 3000;
  const TOP_LIMIT = 10;
  const HOUR_MS = 3600 * 1000;
  /** @typedef {'24h' | '7d' | '30d'} Range */
  /** @typedef {'hour' | 'day'} Step */
  /** @type {Record<Range, number>} */
  const RANGE_MS = { '24h': 24 * HOUR_MS, '7d': 7 * 24 * HOUR_MS, '30d': 30 * 24 * HOUR_MS };
  /** @type {Record<Range, Step>} */
  const RANGE_STEP = { '24h': 'hour', '7d': 'day', '30d': 'day' };
  // uPlot's time-axis formats (tick step s, label, then what a new year/month/day adds), day
  // first and 24-hour like the range text, instead of its US defaults.
  const DAY_S = 24 * 3600;
  const TIME_AXIS = [
    [365 * DAY_S, '{YYYY}', null, null, null, null, null, null, 1],
    [28 * DAY_S, '{MMM}', '\n{YYYY}', null, null, null, null, null, 1],
    [DAY_S, '{D} {MMM}', '\n{YYYY}', null, null, null, null, null, 1],
    [3600, '{HH}:{mm}', '\n{D} {MMM} {YYYY}', null, '\n{D} {MMM}', null, null, null, 1],
    [60, '{HH}:{mm}', '\n{D} {MMM} {YYYY}', null, '\n{D} {MMM}', null, null, null, 1],
  ];
  /** @type {Record<string, string>} */
  const STATE_TEXT = { self: 'this node', live: 'live', connecting: 'connecting', unreachable: 'unreachable' };

  /** @typedef {{ t: number, views: number, visitors: number | undefined }} Point */
  /** @typedef {{ from: string, to: string, points: Point[] }} Series */
  /** @typedef {{ page: string, views: number }} TopPage */
  /** @typedef {{ setData(data: (number | null)[][]): void, setSize(size: { width: number, height: number }): void, destroy(): void }} Plot */
  /** @typedef {new (options: object, data: (number | null)[][], target: HTMLElement) => Plot} PlotConstructor */
  /** @typedef {{ plot: Plot, key: string }} Chart */

  /** @type {{ uPlot?: PlotConstructor & { tzDate(date: Date, tz: string): Date } }} */
  const globals = /** @type {any} */ (window);
  const UPlot = globals.uPlot;

  /**
   * @param {string} id
   * @returns {HTMLElement}
   */
  function byId(id) {
    const found = document.getElementById(id);
    if (!found) throw new Error('the dashboard has no #' + id);
    return found;
  }

  const found = document.getElementById('dashboard');
  if (!found || !UPlot) return;
  const root = found;
  const Plot = UPlot;
  const statusEl = byId('feed-status');
  const siteEl = byId('site');
  const siteRangeEl = byId('site-range');
  const siteViewsEl = byId('site-views');
  const siteVisitorsEl = byId('site-visitors');
  const siteChartEl = byId('site-chart');
  const detailEl = byId('detail');
  const detailNameEl = byId('detail-name');
  const detailViewsEl = byId('detail-views');
  const detailVisitorsEl = byId('detail-visitors');
  const detailChartEl = byId('detail-chart');
  const topRowsEl = byId('top-rows');
  const nodesEl = byId('nodes');
  const numberFormat = new Intl.NumberFormat('en-US');
  const dateFormat = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
  const darkQuery = matchMedia('(prefers-color-scheme: dark)');

  /** @type {Range} */
  let range = '7d';
  /** @type {Step} */
  let step = 'day';
  /** @type {string | null} the page whose chart is open (from the address's #page=…) */
  let selected = null;
  /** Bumped by every change of range or step: answers to older questions are dropped. */
  let generation = 0;
  /** @type {number | null} */
  let pollTimer = null;
  let polling = false;
  /** @type {Chart | null} */
  let siteChart = null;
  /** @type {Chart | null} */
  let detailChart = null;
  /** @type {string} what the top table shows now (pages and views), to rebuild it only on change */
  let topShown = '';
  /** @type {Map<string, Plot>} */
  const sparks = new Map();
  /** @type {Map<string, { key: string, data: (number | null)[][] }>} sparkline data by page */
  const sparkData = new Map();

  // ---------------------------------------------------------------------------------------------
  // Checks: every answer is untrusted until its fields are.

  /**
   * @param {unknown} v
   * @returns {v is Record<string, unknown>}
   */
  function isObject(v) {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  }

  /**
   * @param {unknown} v
   * @returns {v is number}
   */
  function isCount(v) {
    return typeof v === 'number' && v >= 0 && Math.floor(v) === v;
  }

  /**
   * @param {unknown} body
   * @returns {Series | null}
   */
  function readSeries(body) {
    if (!isObject(body) || typeof body.from !== 'string' || typeof body.to !== 'string' || !Array.isArray(body.points)) return null;
    /** @type {Point[]} */
    const points = [];
    for (const p of body.points) {
      if (!isObject(p) || typeof p.t !== 'string' || !isCount(p.views)) return null;
      const t = Date.parse(p.t);
      if (!(t === t)) return null;
      if (p.visitors !== undefined && !isCount(p.visitors)) return null;
      points.push({ t: t / 1000, views: p.views, visitors: isCount(p.visitors) ? p.visitors : undefined });
    }
    return { from: body.from, to: body.to, points };
  }

  /**
   * @param {unknown} body
   * @returns {TopPage[] | null}
   */
  function readTop(body) {
    if (!isObject(body) || !Array.isArray(body.pages)) return null;
    /** @type {TopPage[]} */
    const pages = [];
    for (const p of body.pages) {
      if (!isObject(p) || typeof p.page !== 'string' || !isCount(p.views)) return null;
      pages.push({ page: p.page, views: p.views });
    }
    return pages;
  }

  /**
   * @param {string} path
   * @returns {Promise<unknown>}
   */
  function getJson(path) {
    return fetch(path, { cache: 'no-store', credentials: 'same-origin' }).then(function (response) {
      if (!response.ok) throw new Error(path + ': HTTP ' + response.status);
      return response.json();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Views of the data.

  /**
   * @param {Series} series
   * @returns {(number | null)[][]}
   */
  function chartData(series) {
    const xs = series.points.map((p) => p.t);
    const views = series.points.map((p) => p.views);
    if (step !== 'day') return [xs, views];
    return [xs, views, series.points.map((p) => (p.visitors === undefined ? null : p.visitors))];
  }

  /**
   * @param {Series} series
   * @param {HTMLElement} viewsEl
   * @param {HTMLElement} visitorsEl
   */
  function showTotals(series, viewsEl, visitorsEl) {
    let views = 0;
    let visitors = 0;
    for (const p of series.points) {
      views += p.views;
      visitors += p.visitors || 0;
    }
    viewsEl.textContent = numberFormat.format(views);
    if (step === 'day') {
      visitorsEl.textContent = numberFormat.format(visitors);
      visitorsEl.className = '';
    } else {
      visitorsEl.textContent = 'counted per day: choose “per day”';
      visitorsEl.className = 'na';
    }
  }

  /** @param {string} name */
  function cssColour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
  }

  /**
   * @param {HTMLElement} target
   * @returns {{ width: number, height: number }}
   */
  function chartSize(target) {
    const width = Math.max(240, target.clientWidth);
    return { width, height: Math.round(Math.min(300, Math.max(180, width * 0.45))) };
  }

  /** @param {(number | null)[]} values */
  function yRange(values) {
    let max = 0;
    for (const v of values) if (v !== null && v > max) max = v;
    return max;
  }

  /**
   * @param {HTMLElement} target
   * @param {boolean} withVisitors
   */
  function chartOptions(target, withVisitors) {
    const muted = cssColour('--muted');
    const rule = cssColour('--rule');
    /** @param {unknown} _u @param {number | null} v */
    const value = (_u, v) => (v === null || v === undefined ? '–' : numberFormat.format(v));
    const series = [
      { value: (/** @type {unknown} */ _u, /** @type {number | null} */ t) => (t === null ? '–' : dateFormat.format(new Date(t * 1000)) + ' UTC') },
      { label: 'Views', stroke: cssColour('--chart-views'), fill: cssColour('--chart-fill'), width: 2, value },
    ];
    if (withVisitors) series.push({ label: 'Visitors', stroke: cssColour('--chart-visitors'), fill: '', width: 2, value });
    const axis = { stroke: muted, grid: { stroke: rule, width: 1 }, ticks: { stroke: rule, width: 1 } };
    return Object.assign(chartSize(target), {
      series,
      tzDate: (/** @type {number} */ ts) => Plot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true }, y: { range: (/** @type {unknown} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, max > 0 ? Math.ceil(max * 1.1) : 1] } },
      axes: [Object.assign({}, axis, { values: TIME_AXIS }), Object.assign({}, axis, { size: 56, values: (/** @type {unknown} */ _u, /** @type {number[]} */ ticks) => ticks.map((v) => numberFormat.format(v)) })],
      cursor: { drag: { x: false, y: false } },
    });
  }

  /**
   * Draws `data` into `target`, reusing its chart unless its shape or colours changed.
   * @param {Chart | null} chart
   * @param {HTMLElement} target
   * @param {(number | null)[][]} data
   * @returns {Chart}
   */
  function draw(chart, target, data) {
    const key = data.length + '|' + (darkQuery.matches ? 'dark' : 'light');
    if (chart && chart.key === key) {
      chart.plot.setData(data);
      return chart;
    }
    if (chart) chart.plot.destroy();
    return { plot: new Plot(chartOptions(target, data.length === 3), data, target), key };
  }

  /**
   * @param {HTMLElement} target
   * @param {(number | null)[][]} data
   * @returns {Plot}
   */
  function sparkline(target, data) {
    const max = yRange(data[1] || []);
    return new Plot(
      {
        width: 128,
        height: 28,
        padding: [2, 0, 2, 0],
        legend: { show: false },
        cursor: { show: false },
        select: { show: false },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: false }, y: { range: () => [0, max > 0 ? max : 1] } },
        series: [{}, { stroke: cssColour('--chart-views'), fill: cssColour('--chart-fill'), width: 1.5, points: { show: false } }],
      },
      data,
      target,
    );
  }

  /**
   * @param {string} tag
   * @param {string} [className]
   * @param {string} [text]
   */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** @param {TopPage[]} pages */
  function showTop(pages) {
    const shown = JSON.stringify([range, step, pages, selected]);
    if (shown === topShown) return;
    topShown = shown;
    sparks.forEach((plot) => plot.destroy());
    sparks.clear();
    topRowsEl.textContent = '';
    if (pages.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', '', 'No views in this range.');
      td.setAttribute('colspan', '3');
      tr.appendChild(td);
      topRowsEl.appendChild(tr);
      return;
    }
    for (const top of pages) {
      const tr = el('tr');
      tr.setAttribute('data-page', top.page);
      const th = el('th');
      th.setAttribute('scope', 'row');
      const button = el('button', 'page-link', top.page);
      button.setAttribute('type', 'button');
      if (top.page === selected) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => select(top.page));
      th.appendChild(button);
      tr.appendChild(th);
      tr.appendChild(el('td', 'views', numberFormat.format(top.views)));
      const td = el('td', 'spark');
      const holder = el('div', 'spark-chart');
      holder.setAttribute('aria-hidden', 'true');
      td.appendChild(holder);
      tr.appendChild(td);
      topRowsEl.appendChild(tr);
      const cached = sparkData.get(top.page);
      if (cached) sparks.set(top.page, sparkline(holder, cached.data));
    }
  }

  /**
   * Fetches the sparklines whose page's views changed since they were drawn.
   * @param {TopPage[]} pages
   * @param {string} query
   * @param {number} asked
   */
  function updateSparks(pages, query, asked) {
    return Promise.all(
      pages.map(function (top) {
        const key = range + '|' + step + '|' + top.views;
        const cached = sparkData.get(top.page);
        if (cached && cached.key === key && sparks.has(top.page)) return Promise.resolve();
        return getJson('/api/pages/' + encodeURIComponent(top.page) + '/series?' + query).then(function (body) {
          const series = readSeries(body);
          if (!series || asked !== generation) return;
          const data = [series.points.map((p) => p.t), series.points.map((p) => p.views)];
          sparkData.set(top.page, { key, data });
          const row = Array.prototype.find.call(topRowsEl.children, (/** @type {Element} */ tr) => tr.getAttribute('data-page') === top.page);
          const holder = row && row.querySelector('.spark-chart');
          if (!(holder instanceof HTMLElement)) return;
          const plot = sparks.get(top.page);
          if (plot) plot.destroy();
          sparks.set(top.page, sparkline(holder, data));
        });
      }),
    );
  }

  /** @param {unknown} body */
  function showNodes(body) {
    if (!isObject(body) || !Array.isArray(body.nodes)) return;
    nodesEl.textContent = '';
    for (const node of body.nodes) {
      if (!isObject(node) || typeof node.name !== 'string' || typeof node.state !== 'string') continue;
      const state = STATE_TEXT[node.state] ? node.state : 'unreachable';
      const li = el('li');
      li.setAttribute('data-state', state);
      li.appendChild(el('span', 'node-name', node.name));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'state', STATE_TEXT[state]));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'detail', typeof node.region === 'string' ? node.region : ''));
      nodesEl.appendChild(li);
    }
  }

  /** @param {Series} series */
  function showSite(series) {
    siteEl.setAttribute('data-from', series.from);
    siteEl.setAttribute('data-to', series.to);
    siteEl.setAttribute('data-step', step);
    const from = Date.parse(series.from);
    const to = Date.parse(series.to);
    siteRangeEl.textContent = from === from && to === to ? dateFormat.format(new Date(from)) + ' – ' + dateFormat.format(new Date(to)) + ' UTC, per ' + step : '';
    showTotals(series, siteViewsEl, siteVisitorsEl);
    siteChart = draw(siteChart, siteChartEl, chartData(series));
  }

  /** @param {Series | null} series */
  function showDetail(series) {
    if (selected === null || !series) return;
    detailEl.hidden = false;
    detailEl.setAttribute('data-from', series.from);
    detailEl.setAttribute('data-to', series.to);
    detailNameEl.textContent = selected;
    showTotals(series, detailViewsEl, detailVisitorsEl);
    detailChart = draw(detailChart, detailChartEl, chartData(series));
  }

  /**
   * @param {'live' | 'offline'} state
   * @param {string} text
   */
  function setStatus(state, text) {
    statusEl.setAttribute('data-state', state);
    statusEl.textContent = text;
  }

  // ---------------------------------------------------------------------------------------------
  // Polling.

  function rangeQuery() {
    const now = Date.now();
    return 'step=' + step + '&from=' + encodeURIComponent(new Date(now - RANGE_MS[range]).toISOString()) + '&to=' + encodeURIComponent(new Date(now).toISOString());
  }

  function poll() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
    if (polling) return;
    polling = true;
    const asked = generation;
    const query = rangeQuery();
    const fromTo = query.slice(query.indexOf('&') + 1);
    const page = selected;
    Promise.all([
      getJson('/api/series?' + query),
      getJson('/api/top?' + fromTo + '&limit=' + TOP_LIMIT),
      getJson('/api/cluster'),
      page === null ? Promise.resolve(null) : getJson('/api/pages/' + encodeURIComponent(page) + '/series?' + query),
    ])
      .then(function (answers) {
        if (asked !== generation) return;
        const series = readSeries(answers[0]);
        const top = readTop(answers[1]);
        if (!series || !top) throw new Error('an answer did not have the expected shape');
        showSite(series);
        showTop(top);
        showNodes(answers[2]);
        if (page === selected) showDetail(readSeries(answers[3]));
        setStatus('live', 'Live · updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
        return updateSparks(top, query, asked);
      })
      .catch(function () {
        setStatus('offline', 'Offline: retrying every ' + POLL_MS / 1000 + ' s');
      })
      .then(function () {
        polling = false;
        if (asked !== generation) poll();
        else schedule();
      });
  }

  function schedule() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = document.hidden ? null : setTimeout(poll, POLL_MS);
  }

  /** A change of what is shown: drop answers in flight and ask again now. */
  function refresh() {
    generation++;
    topShown = '';
    poll();
  }

  // ---------------------------------------------------------------------------------------------
  // Controls.

  function pressButtons() {
    root.querySelectorAll('[data-range]').forEach((b) => b.setAttribute('aria-pressed', String(b.getAttribute('data-range') === range)));
    root.querySelectorAll('[data-step]').forEach((b) => b.setAttribute('aria-pressed', String(b.getAttribute('data-step') === step)));
  }

  /** @param {string | null} page */
  function select(page) {
    if (page === null) {
      history.replaceState(null, '', location.pathname + location.search);
      readSelection();
    } else {
      location.hash = 'page=' + encodeURIComponent(page);
    }
  }

  function readSelection() {
    const match = /^#page=(.+)$/.exec(location.hash);
    let page = null;
    if (match) {
      try {
        page = decodeURIComponent(match[1] || '');
      } catch {
        page = null;
      }
    }
    if (page === selected) return;
    selected = page;
    if (selected === null) {
      detailEl.hidden = true;
      if (detailChart) detailChart.plot.destroy();
      detailChart = null;
    }
    refresh();
  }

  root.querySelectorAll('[data-range]').forEach(function (button) {
    button.addEventListener('click', function () {
      const chosen = button.getAttribute('data-range');
      if (chosen !== '24h' && chosen !== '7d' && chosen !== '30d') return;
      range = chosen;
      step = RANGE_STEP[chosen];
      pressButtons();
      refresh();
    });
  });
  root.querySelectorAll('[data-step]').forEach(function (button) {
    button.addEventListener('click', function () {
      const chosen = button.getAttribute('data-step');
      if (chosen !== 'hour' && chosen !== 'day') return;
      step = chosen;
      pressButtons();
      refresh();
    });
  });
  byId('detail-close').addEventListener('click', () => select(null));
  window.addEventListener('hashchange', readSelection);
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) poll();
  });
  // Dark mode on or off: charts are redrawn in the new colours.
  darkQuery.addEventListener('change', function () {
    sparkData.clear();
    refresh();
  });
  if (typeof ResizeObserver === 'function') {
    // Only a change of width redraws (the chart's own height would otherwise feed back).
    let widths = '';
    const resize = new ResizeObserver(function () {
      const now = siteChartEl.clientWidth + '|' + detailChartEl.clientWidth;
      if (now === widths) return;
      widths = now;
      if (siteChart) siteChart.plot.setSize(chartSize(siteChartEl));
      if (detailChart && !detailEl.hidden) detailChart.plot.setSize(chartSize(detailChartEl));
    });
    resize.observe(siteChartEl);
    resize.observe(detailChartEl);
  }

  const initial = /^#page=/.test(location.hash);
  if (initial) readSelection();
  else poll();
})();
