import { describe, expect, it } from 'vitest';
import { bearerToken, tokenMatches, tokenProblem, tokenSet } from '../../src/tokens.js';

describe('bearer tokens', () => {
  it('refuses short, long and oddly shaped tokens at configuration time', () => {
    expect(tokenProblem('short')).toMatch(/at least 16/);
    expect(tokenProblem('x'.repeat(257))).toMatch(/longer than 256/);
    expect(tokenProblem('has spaces in it, sixteen+')).toMatch(/only letters/);
    expect(tokenProblem('abcdefghijklmnop')).toBeUndefined();
    expect(tokenProblem('AbC-._~+/0123456789==')).toBeUndefined();
  });

  it('parses only a well-formed Bearer header', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
  });

  it('matches any configured token and nothing else', () => {
    const tokens = tokenSet(['first-token-0123456', 'second-token-012345']);
    expect(tokenMatches('first-token-0123456', tokens)).toBe(true);
    expect(tokenMatches('second-token-012345', tokens)).toBe(true);
    expect(tokenMatches('first-token-012345', tokens)).toBe(false);
    expect(tokenMatches('', tokens)).toBe(false);
    expect(tokenMatches(undefined, tokens)).toBe(false);
    expect(tokenMatches('first-token-0123456', tokenSet([]))).toBe(false);
  });
});
