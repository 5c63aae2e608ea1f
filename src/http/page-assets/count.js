/**
 * The tag, served at `/count.js` (README "Integration"): counts one view of the page it is on
 * with one POST to the node it was loaded from. The page is `data-page`, else the decoded path.
 * Not counted: automated browsers (navigator.webdriver), and with `data-respect-dnt` visitors
 * who send Do-Not-Track or Global Privacy Control. A prerendered page counts when first shown.
 */
(function () {
  'use strict';
  const script = document.currentScript;
  if (!(script instanceof HTMLScriptElement) || navigator.webdriver) return;
  /** @type {Navigator & { globalPrivacyControl?: boolean }} */
  const nav = navigator;
  if (script.hasAttribute('data-respect-dnt') && (nav.doNotTrack === '1' || nav.globalPrivacyControl === true)) return;

  let page = script.getAttribute('data-page') || location.pathname;
  try {
    page = decodeURIComponent(page);
  } catch {
    // Not valid percent-encoding: counted as written.
  }
  const url = new URL(script.src).origin + '/api/pages/' + encodeURIComponent(page) + '/views';

  // No body: the node counts one anonymous view; sendBeacon outlives the page, fetch is the fallback.
  function send() {
    if (navigator.sendBeacon && navigator.sendBeacon(url)) return;
    fetch(url, { method: 'POST', keepalive: true, credentials: 'omit' }).catch(function () {});
  }

  /** @type {Document & { prerendering?: boolean }} */
  const doc = document;
  if (doc.prerendering) {
    doc.addEventListener('prerenderingchange', send, { once: true });
  } else if (String(doc.visibilityState) === 'prerender') {
    const shown = function () {
      if (String(doc.visibilityState) === 'prerender') return;
      doc.removeEventListener('visibilitychange', shown);
      send();
    };
    doc.addEventListener('visibilitychange', shown);
  } else {
    send();
  }
})();
