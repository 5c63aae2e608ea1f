/**
 * The page's script, served at `/assets/live.js`: opens the live feed for the page it is on and
 * keeps the total, the per-node breakdown and the cluster list current; reconnects with capped
 * exponential backoff and says when it is offline. Plain ES2017, no framework, no build step
 * (kept in a module so `dist/` carries it). Every value from the feed is written with textContent.
 * `replicaRows` and `clusterRows` mirror the functions of the same names in `../page.ts`.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var RECONNECT_MIN_MS = 500;
  var RECONNECT_MAX_MS = 10000;
  var MAX_EARLIER_REPLICA_ROWS = 3;
  var SHORT_ID_CHARS = 8;
  var STATE_TEXT = { self: 'this node', live: 'live', connecting: 'connecting', unreachable: 'unreachable' };

  var root = document.getElementById('live');
  if (!root || !('WebSocket' in window)) return;
  var page = root.getAttribute('data-page') || '';
  var countEl = document.getElementById('count');
  var replicasEl = document.getElementById('replicas');
  var nodesEl = document.getElementById('nodes');
  var statusEl = document.getElementById('feed-status');
  var numberFormat = new Intl.NumberFormat('en-US');

  var replicas = null;
  var cluster = null;
  var attempt = 0;
  var socket = null;
  var retryTimer = null;

  function isObject(v) { return typeof v === 'object' && v !== null && !Array.isArray(v); }
  function isCount(v) { return typeof v === 'number' && v >= 0 && Math.floor(v) === v; }
  function str(v) { return typeof v === 'string' ? v : undefined; }
  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function byName(a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; }

  function setStatus(state, text) {
    statusEl.setAttribute('data-state', state);
    statusEl.textContent = text;
    root.setAttribute('data-feed', state);
  }

  function nodeNames() {
    var names = new Map();
    if (!cluster) return names;
    cluster.peers.forEach(function (p) { if (str(p.replicaId) && str(p.name)) names.set(p.replicaId, p.name); });
    cluster.membership.forEach(function (m) { if (str(m.replicaId) && str(m.name)) names.set(m.replicaId, m.name); });
    if (isObject(cluster.node) && str(cluster.node.replicaId) && str(cluster.node.name)) names.set(cluster.node.replicaId, cluster.node.name);
    return names;
  }

  function replicaRows() {
    var names = nodeNames();
    var known = [];
    var earlier = [];
    Object.keys(replicas).forEach(function (id) {
      var count = replicas[id];
      if (!isCount(count)) return;
      var name = names.get(id);
      if (name !== undefined) known.push({ label: name, count: count, id: id, known: true });
      else earlier.push({ label: 'earlier replica ' + id.slice(0, SHORT_ID_CHARS), count: count, id: id, known: false });
    });
    function byCount(a, b) { return b.count - a.count || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0); }
    known.sort(byCount);
    earlier.sort(byCount);
    if (earlier.length > MAX_EARLIER_REPLICA_ROWS) {
      var sum = earlier.reduce(function (s, r) { return s + r.count; }, 0);
      return known.concat([{ label: earlier.length + ' earlier replicas', count: sum, known: false }]);
    }
    return known.concat(earlier);
  }

  function renderReplicas() {
    if (!replicas) return;
    var rows = replicaRows();
    var fragment = document.createDocumentFragment();
    if (rows.length === 0) {
      var empty = el('tr', 'empty');
      var cell = el('td', '', 'No views yet.');
      cell.colSpan = 2;
      empty.appendChild(cell);
      fragment.appendChild(empty);
    }
    rows.forEach(function (r) {
      var tr = el('tr', r.known ? '' : 'earlier');
      if (r.id) tr.setAttribute('data-replica', r.id);
      var th = el('th', '', r.label);
      th.scope = 'row';
      tr.appendChild(th);
      tr.appendChild(el('td', '', numberFormat.format(r.count)));
      fragment.appendChild(tr);
    });
    replicasEl.replaceChildren(fragment);
  }

  function lagText(peer) {
    if (!peer || peer.state !== 'connected') return 'reached through other nodes';
    if (peer.lagSeqs === undefined && peer.behindSeqs === undefined) return 'syncing';
    var behind = isCount(peer.lagSeqs) ? peer.lagSeqs : 0;
    var ahead = isCount(peer.behindSeqs) ? peer.behindSeqs : 0;
    if (behind === 0 && ahead === 0) return 'in sync';
    var parts = [];
    if (behind > 0) parts.push(numberFormat.format(behind) + (behind === 1 ? ' change' : ' changes') + ' behind');
    if (ahead > 0) parts.push(numberFormat.format(ahead) + (ahead === 1 ? ' change' : ' changes') + ' ahead');
    return parts.join(', ');
  }

  function downText(peer) { return (peer && str(peer.lastError)) || 'no answer'; }

  function clusterRows() {
    var node = cluster.node;
    var peerByReplica = new Map();
    cluster.peers.forEach(function (p) {
      if (!str(p.replicaId)) return;
      var seen = peerByReplica.get(p.replicaId);
      if (!seen || (seen.state !== 'connected' && p.state === 'connected')) peerByReplica.set(p.replicaId, p);
    });
    var shown = new Set([node.replicaId]);
    var shownAddresses = new Set();
    function row(name, id, state, detail) { return { name: name, id: id, state: state, detail: detail }; }
    var others = [];
    cluster.membership.forEach(function (m) {
      if (!str(m.replicaId) || !str(m.name) || shown.has(m.replicaId)) return;
      shown.add(m.replicaId);
      var peer = peerByReplica.get(m.replicaId);
      others.push(m.live === true ? row(m.name, m.replicaId, 'live', lagText(peer)) : row(m.name, m.replicaId, 'unreachable', downText(peer)));
    });
    cluster.peers.forEach(function (p) {
      if (p.state === 'self' || !str(p.address)) return;
      var id = str(p.replicaId);
      if (id !== undefined ? shown.has(id) : shownAddresses.has(p.address)) return;
      if (id !== undefined) shown.add(id);
      shownAddresses.add(p.address);
      var name = str(p.name) || p.address;
      if (p.state === 'connected') others.push(row(name, id, 'live', lagText(p)));
      else if (id === undefined && !str(p.lastError)) others.push(row(name, id, 'connecting', p.address));
      else others.push(row(name, id, 'unreachable', downText(p)));
    });
    others.sort(byName);
    return [row(node.name, node.replicaId, 'self', str(node.region) || '')].concat(others);
  }

  function renderCluster() {
    var fragment = document.createDocumentFragment();
    clusterRows().forEach(function (r) {
      var li = el('li');
      li.setAttribute('data-state', r.state);
      if (r.id) li.setAttribute('data-replica', r.id);
      li.appendChild(el('span', 'node-name', r.name));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'state', STATE_TEXT[r.state]));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'detail', r.detail));
      fragment.appendChild(li);
    });
    nodesEl.replaceChildren(fragment);
  }

  function onPage(m) {
    if (m.page !== page || !isCount(m.count) || !isObject(m.replicas)) return;
    var text = numberFormat.format(m.count);
    if (countEl.textContent !== text) {
      countEl.textContent = text;
      countEl.classList.remove('bumped');
      void countEl.offsetWidth;
      countEl.classList.add('bumped');
    }
    replicas = m.replicas;
    renderReplicas();
  }

  function onCluster(c) {
    if (!isObject(c) || !isObject(c.node) || !str(c.node.name) || !str(c.node.replicaId) || !Array.isArray(c.peers) || !Array.isArray(c.membership)) return;
    cluster = {
      node: c.node,
      peers: c.peers.filter(isObject),
      membership: c.membership.filter(isObject),
    };
    renderCluster();
    renderReplicas();
  }

  function connect() {
    retryTimer = null;
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var url = scheme + '//' + location.host + '/api/live?page=' + encodeURIComponent(page) + '&cluster=1';
    setStatus('connecting', attempt === 0 ? 'Connecting…' : 'Offline: reconnecting…');
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      retry();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      attempt = 0;
      setStatus('live', 'Live');
    };
    ws.onmessage = function (event) {
      var m;
      try { m = JSON.parse(event.data); } catch (e) { return; }
      if (!isObject(m)) return;
      if (m.type === 'page') onPage(m);
      else if (m.type === 'cluster') onCluster(m.cluster);
    };
    ws.onclose = function () {
      if (socket !== ws) return;
      socket = null;
      retry();
    };
  }

  function retry() {
    // Capped exponential backoff with jitter, so a restarted node is not hit by every tab at once.
    var ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * Math.pow(2, attempt));
    var delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    attempt++;
    setStatus('offline', 'Offline: reconnecting in ' + Math.max(1, Math.round(delay / 1000)) + ' s');
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener('online', function () {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      connect();
    }
  });

  connect();
})();
`;
