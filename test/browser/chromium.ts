/** Debian's Chromium for the browser tests (page.test.ts keeps its own copy of these). */
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`test/browser: SKIPPED — ${CHROMIUM} is missing, so the tag, badge and dashboard cannot be tested in a browser. Install it with: apt-get update && apt-get install -y chromium`);
}
