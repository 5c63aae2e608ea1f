/**
 * Page names sort in UTF-8 byte order everywhere (SQLite's BINARY collation on UTF-8 text).
 * JavaScript's `<` compares UTF-16 code units, which differs for characters above U+FFFF
 * (surrogates, 0xD800–0xDFFF) against U+E000–U+FFFF; comparing code points matches UTF-8.
 */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only when one side is a surrogate and the other is at or above U+E000 does UTF-16 order
    // disagree with code point order: a surrogate starts a code point above U+FFFF.
    if (x >= 0xd800 && x <= 0xdfff && y >= 0xe000) return 1;
    if (y >= 0xd800 && y <= 0xdfff && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}
