import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareUtf8, hasLoneSurrogate } from '../../src/utf8.js';

const sign = (n: number) => Math.sign(n);

describe('compareUtf8 (the one page order)', () => {
  it('agrees with the byte order of UTF-8 for any strings of whole characters', () => {
    const text = fc.string({ unit: 'binary', maxLength: 8 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(sign(compareUtf8(a, b))).toBe(sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))));
      }),
      { numRuns: 2000 },
    );
  });

  it('puts characters above U+FFFF after U+E000–U+FFFF, unlike UTF-16 order', () => {
    expect(compareUtf8('\u{1F600}', '\uE000')).toBeGreaterThan(0);
    expect(compareUtf8('\uFFFD', '\u{10000}')).toBeLessThan(0);
    expect('\u{1F600}' < '\uE000').toBe(true);
  });
});

describe('hasLoneSurrogate (the one check)', () => {
  it('finds a surrogate without its pair, anywhere, and nothing else', () => {
    for (const lone of ['\ud800', '\udc00', 'a\ud83d', '\ude00b', '\ude00\ud83d']) expect(hasLoneSurrogate(lone)).toBe(true);
    for (const fine of ['', 'abc', '\u{1F600}', 'é\u{10000}z', '\uE000']) expect(hasLoneSurrogate(fine)).toBe(false);
  });
});
