import { describe, expect, it } from 'vitest';
import { escapeHtml, renderHomePage } from '../../src/http/page.js';

describe('home page rendering', () => {
  it('escapes every value placed in the HTML', () => {
    const evil = `<script>alert("x")</script>&'`;
    const html = renderHomePage({
      page: evil,
      count: 42,
      node: { name: evil, region: evil, version: evil },
      membership: [{ name: evil, replicaId: evil, region: evil, live: true }],
    });
    expect(html).not.toContain('<script>');
    expect(html).not.toContain(`"x"`);
    expect(html.split(escapeHtml(evil)).length - 1).toBe(7);
    expect(html).toContain('>42<');
  });

  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('shows every member and whether it is live', () => {
    const html = renderHomePage({
      page: 'home',
      count: 1,
      node: { name: 'a', version: '1' },
      membership: [
        { name: 'a', replicaId: 'r1', live: true },
        { name: 'b', replicaId: 'r2', live: false },
      ],
    });
    expect(html).toMatch(/<li data-replica="r1">a — live<\/li>/);
    expect(html).toMatch(/<li data-replica="r2">b — gone<\/li>/);
  });
});
