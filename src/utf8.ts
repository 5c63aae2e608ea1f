/**
 * UTF-8 facts about JavaScript strings, pure (no I/O): the one string order and the one
 * lone-surrogate check the rest of the code uses. Page names sort in UTF-8 byte order everywhere
 * (SQLite's BINARY collation on UTF-8 text); a string with a lone surrogate has no UTF-8 form.
 */

const isSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdfff;

/**
 * UTF-8 byte order. JavaScript's `<` compares UTF-16 code units, which differs for characters
 * above U+FFFF (surrogates, 0xD800–0xDFFF) against U+E000–U+FFFF; comparing code points matches
 * UTF-8.
 */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only when one side is a surrogate and the other is at or above U+E000 does UTF-16 order
    // disagree with code point order: a surrogate starts a code point above U+FFFF.
    if (isSurrogate(x) && y >= 0xe000) return 1;
    if (isSurrogate(y) && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True when `value` holds a surrogate without its pair: it cannot be encoded as UTF-8. */
export function hasLoneSurrogate(value: string): boolean {
  return LONE_SURROGATE.test(value);
}
