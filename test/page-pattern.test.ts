import { describe, expect, it } from 'vitest';
import { compilePagePattern } from '../src/page-pattern.js';

describe('PAGE_PATTERN', () => {
  it.each(['^/blog/[a-z0-9-]+$', '^(home|about)$', '^/docs/[^/]{1,64}$', '^(?:/[a-z]+)?$', '\\(a+\\)+', '[(a+)+]'])('accepts %s', (source) => {
    expect(compilePagePattern(source)).toBeInstanceOf(RegExp);
  });

  it.each(['^(a+)+$', '^(a|aa)*$', '^(\\w*)*$', '^((ab)*c)+$', '^(a{1,3}){2,}$', '^(?:[a-z]+/)+$'])('refuses the nested repetition in %s', (source) => {
    expect(compilePagePattern(source)).toEqual({ problem: expect.stringContaining('repeats a group') as unknown });
  });

  it('refuses what does not compile, and overlong patterns', () => {
    expect(compilePagePattern('^[a-')).toEqual({ problem: expect.stringContaining('not a valid regular expression') as unknown });
    expect(compilePagePattern('a'.repeat(2000))).toEqual({ problem: expect.stringContaining('longer than') as unknown });
  });
});
