/**
 * PAGE_PATTERN: the regular expression the name of a page must match for an anonymous view to
 * create it (e.g. `^/blog/[a-z0-9-]+$`). It runs on every anonymous view of a new page, so it is
 * checked at start: it must compile, and it must not nest quantifiers (`(a+)+`, `(a|aa)*`,
 * `(\w*)+`), the shape whose backtracking grows exponentially with the input. The input is a page
 * name, which is at most 256 bytes (ids.ts) before the pattern ever sees it; with no nested
 * quantifier the work per name stays polynomial in those 256 bytes.
 */

/** Longest pattern accepted: it is configuration, not a program. */
export const MAX_PAGE_PATTERN_LENGTH = 1024;

/** The compiled pattern, or a problem naming what to fix. */
export function compilePagePattern(source: string): RegExp | { problem: string } {
  if (source.length > MAX_PAGE_PATTERN_LENGTH) return { problem: `is longer than ${MAX_PAGE_PATTERN_LENGTH} characters` };
  let pattern: RegExp;
  try {
    // `u`: page names are UTF-8 text, so `.` and classes see whole characters.
    pattern = new RegExp(source, 'u');
  } catch (error) {
    return { problem: `is not a valid regular expression: ${(error as Error).message}` };
  }
  if (hasNestedQuantifier(source)) {
    return { problem: 'repeats a group that itself repeats (like (a+)+ or (a|b*)*), which can take exponential time on a crafted name; rewrite it without the nested repetition' };
  }
  return pattern;
}

/**
 * True when a quantified group contains a quantifier or an alternation: a conservative test for
 * star height above one (it also refuses some harmless patterns, such as `(ab|cd)+`, which can
 * be written as `(?:ab|cd)` once or as a character class).
 */
function hasNestedQuantifier(source: string): boolean {
  // Per open group: whether a quantifier or `|` appeared inside it (inner groups report upward).
  const stack: boolean[] = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') stack.push(false);
    else if (c === ')') {
      const inner = stack.pop() ?? false;
      const quantified = isQuantifierAt(source, i + 1);
      if (inner && quantified) return true;
      if ((inner || quantified) && stack.length > 0) stack[stack.length - 1] = true;
    } else if (c === '|' || isQuantifierAt(source, i)) {
      if (stack.length > 0) stack[stack.length - 1] = true;
    }
  }
  return false;
}

/** A repeating quantifier at `i`: `*`, `+`, or `{n,}` / `{n,m}` (a `?` or `{n}` does not repeat). */
function isQuantifierAt(source: string, i: number): boolean {
  const c = source[i];
  if (c === '*' || c === '+') return true;
  if (c !== '{') return false;
  const match = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i, i + 24));
  if (match === null || match[2] === undefined) return false;
  return match[3] === '' || Number(match[3]) > 1;
}
