/**
 * The page's script, served at `/assets/live.js`: opens the live feed for the page it is on and
 * keeps the total, the per-node breakdown and the cluster list current; reconnects with capped
 * exponential backoff and says when it is offline. Every value from the feed is checked before
 * use and written with textContent. `replicaRows` and `clusterRows` mirror the functions of the
 * same names in `../page.ts`.
 *
 * Plain ES2019 for the browser, no framework, served byte for byte as this file (`assets.ts`).
 * A classic script, not a module: everything lives inside one function. Type-checked by tsc
 * (`tsconfig.browser.json`: checkJs, the DOM library, no Node types) and linted by eslint.
 * Longer than 300 lines on purpose: the browser loads it as one file (one request, no bundler),
 * and a third of it is the JSDoc types the checker reads.
 */
(function () {
  'use strict';
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  const MAX_EARLIER_REPLICA_ROWS = 3;
  const SHORT_ID_CHARS = 8;

  /** @typedef {'self' | 'live' | 'connecting' | 'unreachable'} NodeState */
  /** @type {Record<NodeState, string>} */
  const STATE_TEXT = { self: 'this node', live: 'live', connecting: 'connecting', unreachable: 'unreachable' };

  /**
   * A peer or member as received: any field may be missing or of the wrong type, so each is
   * checked where it is read.
   * @typedef {Record<string, unknown>} Fields
   */
  /**
   * The parts of a cluster message this script shows, once checked (`onCluster`).
   * @typedef {{ node: { name: string, replicaId: string, region: string | undefined }, peers: Fields[], membership: Fields[] }} Cluster
   */
  /** @typedef {{ label: string, count: number, id?: string, known: boolean }} ReplicaRow */
  /** @typedef {{ name: string, id: string | undefined, state: NodeState, detail: string }} NodeRow */

  const root = document.getElementById('live');
  const countEl = document.getElementById('count');
  const replicasEl = document.getElementById('replicas');
  const nodesEl = document.getElementById('nodes');
  const statusEl = document.getElementById('feed-status');
  if (!root || !countEl || !replicasEl || !nodesEl || !statusEl || !('WebSocket' in window)) return;
  const page = root.getAttribute('data-page') || '';
  const numberFormat = new Intl.NumberFormat('en-US');
  /** A replica id (src/ids.ts); any other key of a page's breakdown is the folded remainder. */
  const REPLICA_ID = /^[0-9a-f]{32}$/;
  /** The key the node folds unshown replicas under (src/http/replica-fold.ts, EARLIER_REPLICAS_KEY). */
  const FOLDED_KEY = 'earlier';

  /**
   * Everything this page has seen, per replica (the max of every message): the count shown is
   * their sum, so a reconnect to another node, or a node restored from an old backup, never moves
   * it down. A G-Counter's slots only grow, so the max per replica is always a real state —
   * within one reset epoch: a message of a newer epoch (the page was reset) starts `seen` and
   * `shown` again from it, and one of an older epoch (a node that has not received the reset) is
   * ignored. Only real replica ids are kept: a folded entry ("earlier", the sum of replicas not
   * shown one by one) is not one replica's state, and a replica moving in or out of it would be
   * counted twice; it is shown from the latest message and bounded by that message's count.
   * @type {Record<string, number>}
   */
  let seen = {};
  /** The highest count shown (a server's floor may exceed the slots it sent). */
  let shown = 0;
  /** The reset epoch of what `seen` and `shown` hold. */
  let epoch = Number(root.getAttribute('data-epoch') || '0') || 0;
  /** The latest message's folded remainder (not a replica), for the breakdown only. */
  let folded = 0;
  /** @type {string} the latest Counter-Session token, sent with each (re)connect */
  let session = root.getAttribute('data-session') || '';

  /** @type {Fields | null} the page's slots (replica → count): what was seen, merged */
  let replicas = null;
  /** @type {Cluster | null} */
  let cluster = null;
  let attempt = 0;
  /** @type {WebSocket | null} */
  let socket = null;
  /** @type {number | null} */
  let retryTimer = null;

  // ---------------------------------------------------------------------------------------------
  // Checks and views: pure functions of what the feed sent.

  /**
   * @param {unknown} v
   * @returns {v is Fields}
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
   * @param {unknown} v
   * @returns {string | undefined}
   */
  function str(v) {
    return typeof v === 'string' ? v : undefined;
  }

  /**
   * @param {string} a
   * @param {string} b
   */
  function compareText(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /**
   * Replica id → node name, from peers and membership (membership wins, this node last).
   * @param {Cluster | null} status
   */
  function nodeNames(status) {
    /** @type {Map<string, string>} */
    const names = new Map();
    if (!status) return names;
    for (const fields of status.peers.concat(status.membership)) {
      const id = str(fields.replicaId);
      const name = str(fields.name);
      if (id && name) names.set(id, name);
    }
    names.set(status.node.replicaId, status.node.name);
    return names;
  }

  /**
   * The per-node breakdown: known replicas by name, unknown ones as "earlier replica" rows
   * (folded into one past a few).
   * @param {Fields} slots
   * @param {Cluster | null} status
   * @returns {ReplicaRow[]}
   */
  function replicaRows(slots, status) {
    const names = nodeNames(status);
    /** @type {ReplicaRow[]} */
    const known = [];
    /** @type {ReplicaRow[]} */
    const earlier = [];
    for (const id of Object.keys(slots)) {
      const count = slots[id];
      if (!isCount(count)) continue;
      const name = names.get(id);
      if (name !== undefined) known.push({ label: name, count, id, known: true });
      else earlier.push({ label: 'earlier replica ' + id.slice(0, SHORT_ID_CHARS), count, id, known: false });
    }
    /** @type {(a: ReplicaRow, b: ReplicaRow) => number} */
    const byCount = (a, b) => b.count - a.count || compareText(a.label, b.label);
    known.sort(byCount);
    earlier.sort(byCount);
    if (earlier.length > MAX_EARLIER_REPLICA_ROWS) {
      const sum = earlier.reduce((s, r) => s + r.count, 0);
      return known.concat([{ label: earlier.length + ' earlier replicas', count: sum, known: false }]);
    }
    return known.concat(earlier);
  }

  /**
   * Whether a member is reached directly (the page is public: no lag, address or error).
   * @param {Fields | undefined} peer
   */
  function lagText(peer) {
    return !peer || peer.state !== 'connected' ? 'reached through other nodes' : 'connected';
  }

  function downText() {
    return 'no answer';
  }

  /**
   * The cluster's nodes: this one, every member (live or unreachable), then peers that are not
   * members; a peer never reached and with no error yet is `connecting`.
   * @param {Cluster} status
   * @returns {NodeRow[]}
   */
  function clusterRows(status) {
    const node = status.node;
    /** @type {Map<string, Fields>} */
    const peerByReplica = new Map();
    for (const peer of status.peers) {
      const id = str(peer.replicaId);
      if (!id) continue;
      const seen = peerByReplica.get(id);
      // One replica can be a peer twice (dialled and dialling): the connected link tells most.
      if (!seen || (seen.state !== 'connected' && peer.state === 'connected')) peerByReplica.set(id, peer);
    }
    const shown = new Set([node.replicaId]);
    /** @type {Set<string>} */
    const shownAddresses = new Set();
    /** @type {(name: string, id: string | undefined, state: NodeState, detail: string) => NodeRow} */
    const row = (name, id, state, detail) => ({ name, id, state, detail });
    /** @type {NodeRow[]} */
    const others = [];
    for (const member of status.membership) {
      const id = str(member.replicaId);
      const name = str(member.name);
      if (!id || !name || shown.has(id)) continue;
      shown.add(id);
      const peer = peerByReplica.get(id);
      others.push(member.live === true ? row(name, id, 'live', lagText(peer)) : row(name, id, 'unreachable', downText()));
    }
    for (const peer of status.peers) {
      const address = str(peer.address);
      if (peer.state === 'self' || !address) continue;
      const id = str(peer.replicaId);
      if (id !== undefined ? shown.has(id) : shownAddresses.has(address)) continue;
      if (id !== undefined) shown.add(id);
      shownAddresses.add(address);
      const name = str(peer.name) || 'unnamed peer';
      if (peer.state === 'connected') others.push(row(name, id, 'live', lagText(peer)));
      else if (id === undefined && !str(peer.lastError)) others.push(row(name, id, 'connecting', ''));
      else others.push(row(name, id, 'unreachable', downText()));
    }
    others.sort((a, b) => compareText(a.name, b.name));
    return [row(node.name, node.replicaId, 'self', node.region || '')].concat(others);
  }

  // ---------------------------------------------------------------------------------------------
  // The DOM: text only.

  /**
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {string} [className]
   * @param {string} [text]
   * @returns {HTMLElementTagNameMap[K]}
   */
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /**
   * @param {string} state
   * @param {string} text
   */
  const setStatus = (state, text) => {
    statusEl.setAttribute('data-state', state);
    statusEl.textContent = text;
    root.setAttribute('data-feed', state);
  };

  const renderReplicas = () => {
    if (!replicas) return;
    const rows = replicaRows(replicas, cluster);
    const fragment = document.createDocumentFragment();
    if (rows.length === 0) {
      const empty = el('tr', 'empty');
      const cell = el('td', '', 'No views yet.');
      cell.colSpan = 2;
      empty.appendChild(cell);
      fragment.appendChild(empty);
    }
    for (const r of rows) {
      const tr = el('tr', r.known ? '' : 'earlier');
      if (r.id) tr.setAttribute('data-replica', r.id);
      const th = el('th', '', r.label);
      th.scope = 'row';
      tr.appendChild(th);
      tr.appendChild(el('td', '', numberFormat.format(r.count)));
      fragment.appendChild(tr);
    }
    replicasEl.replaceChildren(fragment);
  };

  /** @param {Cluster} status */
  const renderCluster = (status) => {
    const fragment = document.createDocumentFragment();
    for (const r of clusterRows(status)) {
      const li = el('li');
      li.setAttribute('data-state', r.state);
      if (r.id) li.setAttribute('data-replica', r.id);
      li.appendChild(el('span', 'node-name', r.name));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'state', STATE_TEXT[r.state]));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(el('span', 'detail', r.detail));
      fragment.appendChild(li);
    }
    nodesEl.replaceChildren(fragment);
  };

  // ---------------------------------------------------------------------------------------------
  // The feed.

  /**
   * Merges slots into `seen` (max per replica) and returns their sum.
   * @param {Fields} slots
   */
  const mergeSeen = (slots) => {
    folded = 0;
    for (const id of Object.keys(slots)) {
      const count = slots[id];
      if (!isCount(count)) continue;
      if (!REPLICA_ID.test(id)) {
        folded += count;
        continue;
      }
      if (count > (seen[id] || 0)) seen[id] = count;
    }
    let sum = 0;
    for (const id of Object.keys(seen)) sum += seen[id] || 0;
    return sum;
  };

  /** @param {Fields} m */
  const onPage = (m) => {
    if (m.page !== page || !isCount(m.count) || !isObject(m.replicas)) return;
    const messageEpoch = isCount(m.epoch) ? m.epoch : 0;
    // A node that has not received a reset this page saw: its counts are of the ended epoch.
    if (messageEpoch < epoch) return;
    if (messageEpoch > epoch) {
      // The page was reset: what was seen before is over; the count starts again from this.
      epoch = messageEpoch;
      seen = {};
      shown = 0;
    }
    const token = str(m.session);
    if (token) session = token;
    shown = Math.max(shown, m.count, mergeSeen(m.replicas));
    const text = numberFormat.format(shown);
    if (countEl.textContent !== text) {
      countEl.textContent = text;
      countEl.classList.remove('bumped');
      // Reading the layout restarts the animation.
      void countEl.offsetWidth;
      countEl.classList.add('bumped');
    }
    replicas = folded > 0 ? { ...seen, [FOLDED_KEY]: folded } : seen;
    renderReplicas();
  };

  /** @param {unknown} c */
  const onCluster = (c) => {
    if (!isObject(c) || !isObject(c.node) || !Array.isArray(c.peers) || !Array.isArray(c.membership)) return;
    const name = str(c.node.name);
    const replicaId = str(c.node.replicaId);
    if (!name || !replicaId) return;
    const status = {
      node: { name, replicaId, region: str(c.node.region) },
      peers: c.peers.filter(isObject),
      membership: c.membership.filter(isObject),
    };
    cluster = status;
    renderCluster(status);
    renderReplicas();
  };

  const retry = () => {
    // Capped exponential backoff with jitter, so a restarted node is not hit by every tab at once.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * Math.pow(2, attempt));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    attempt++;
    setStatus('offline', 'Offline: reconnecting in ' + Math.max(1, Math.round(delay / 1000)) + ' s');
    retryTimer = setTimeout(connect, delay);
  };

  const connect = () => {
    retryTimer = null;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url =
      scheme + '//' + location.host + '/api/live?page=' + encodeURIComponent(page) + '&cluster=1' + (session ? '&session=' + encodeURIComponent(session) : '');
    setStatus('connecting', attempt === 0 ? 'Connecting…' : 'Offline: reconnecting…');
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      retry();
      return;
    }
    socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      attempt = 0;
      setStatus('live', 'Live');
    };
    ws.onmessage = (event) => {
      /** @type {unknown} */
      let m;
      try {
        m = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!isObject(m)) return;
      if (m.type === 'page') onPage(m);
      else if (m.type === 'cluster') onCluster(m.cluster);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      // Refused before opening: do not offer the token again (what it saw stays in `seen`).
      if (!opened) session = '';
      retry();
    };
  };

  // What the server rendered is the first thing seen.
  try {
    /** @type {unknown} */
    const rendered = JSON.parse(root.getAttribute('data-replicas') || '{}');
    if (isObject(rendered)) shown = mergeSeen(rendered);
  } catch {
    // A page without the attribute starts from the feed.
  }

  window.addEventListener('online', () => {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      connect();
    }
  });

  connect();
})();
