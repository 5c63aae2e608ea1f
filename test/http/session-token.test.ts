import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import {
  EMPTY_SESSION,
  MAX_SESSION_TOKEN_CHARS,
  mergeSeen,
  pageHash,
  remember,
  sessionKey,
  SessionTokens,
} from '../../src/http/session-token.js';
import { openMemoryStore } from '../../src/store/memory-store.js';

const SECRET = 'a-cluster-secret-of-at-least-32-characters';
const replica = (n: number): ReplicaId => n.toString(16).padStart(32, '0') as ReplicaId;
const seen = (page: string, slots: Array<[number, number]>) => {
  const replicas = new Map(slots.map(([r, c]) => [replica(r), c] as [ReplicaId, number]));
  let count = 0;
  for (const c of replicas.values()) count += c;
  return { page, count, replicas };
};

function badSession(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isAppError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a bad_session error');
}

describe('session tokens', () => {
  it('are byte for byte the tokens of the lib0-encoded version (signed before the in-place writer, issue 19)', () => {
    // Tokens signed by the earlier code with this key: nodes of either version accept each other's.
    const tokens = new SessionTokens(Buffer.alloc(32, 9));
    const r = (c: string) => c.repeat(32) as ReplicaId;
    const page = (hash: string, epoch: number, floor: number, slots: Array<[ReplicaId, number]>) => ({ hash, epoch, floor, slots: new Map(slots) });
    const overflow = Array.from({ length: 3 }, (_, i) =>
      page(`${i}`.repeat(16), i, 1000 * i, Array.from({ length: 12 }, (_, j) => [j.toString(16).padStart(32, '0') as ReplicaId, 10 + j] as [ReplicaId, number])),
    );
    expect(tokens.sign({ pages: [] })).toBe('AQC2o9hTIT4GGlqbPZLW7R7D');
    expect(tokens.sign({ pages: [page('0123456789abcdef', 0, 3, [[r('a'), 1], [r('b'), 2], [r('c'), 0]])] })).toBe(
      'AQEBI0VniavN7wADAru7u7u7u7u7u7u7u7u7u7sCqqqqqqqqqqqqqqqqqqqqqgFk2ZQiyTXPwd7SlqnoyTpz',
    );
    expect(tokens.sign({ pages: [page('fedcba9876543210', 2, 2 ** 53 - 1, [[r('d'), 2 ** 40 + 5], [r('e'), 300]])] })).toBe(
      'AQH-3LqYdlQyEAL_________DwLd3d3d3d3d3d3d3d3d3d3dhYCAgIAg7u7u7u7u7u7u7u7u7u7u7qwCEmoz2UxQaSFvPy-mXuGuWg',
    );
    // Past the size bound: the second page loses its smallest slots, the third is dropped.
    expect(tokens.sign({ pages: overflow })).toBe(
      'AQIAAAAAAAAAAAAADAAAAAAAAAAAAAAAAAAAAAsVAAAAAAAAAAAAAAAAAAAAChQAAAAAAAAAAAAAAAAAAAAJEwAAAAAAAAAAAAAAAAAAAAgSAAAAAAAAAAAAAAAAAAAABxEAAAAAAAAAAAAAAAAAAAAGEAAAAAAAAAAAAAAAAAAAAAUPAAAAAAAAAAAAAAAAAAAABA4AAAAAAAAAAAAAAAAAAAADDQAAAAAAAAAAAAAAAAAAAAIMAAAAAAAAAAAAAAAAAAAAAQsAAAAAAAAAAAAAAAAAAAAAChERERERERERAegHCAAAAAAAAAAAAAAAAAAAAAsVAAAAAAAAAAAAAAAAAAAAChQAAAAAAAAAAAAAAAAAAAAJEwAAAAAAAAAAAAAAAAAAAAgSAAAAAAAAAAAAAAAAAAAABxEAAAAAAAAAAAAAAAAAAAAGEAAAAAAAAAAAAAAAAAAAAAUPAAAAAAAAAAAAAAAAAAAABA6NJENL7068Q06E8Ey-hKtm',
    );
    expect(tokens.verify(tokens.sign({ pages: overflow })).pages.map((p) => p.hash)).toEqual(['0000000000000000', '1111111111111111']);
  });

  it('round-trip on every node of a cluster (HKDF of CLUSTER_SECRET), and the answer merges what they saw', () => {
    const a = new SessionTokens(sessionKey(SECRET, 'c1'));
    const b = new SessionTokens(sessionKey(SECRET, 'c1'));
    const token = a.sign(remember(EMPTY_SESSION, [seen('home', [[1, 5], [2, 7]])]));
    const session = b.verify(token);
    expect(session.pages).toHaveLength(1);
    expect(session.pages[0]!.hash).toBe(pageHash('home'));
    // Node b has only replica 2 at 9 and replica 3 at 1: the answer is max per replica.
    const merged = mergeSeen('home', [{ replica: replica(2), count: 9 }, { replica: replica(3), count: 1 }], session);
    expect(merged.count).toBe(5 + 9 + 1);
    // Another page of the same session is untouched.
    expect(mergeSeen('about', [{ replica: replica(2), count: 1 }], session).count).toBe(1);
  });

  it('never answers or signs a count past 2^53 - 1, so the token it gives is one every node accepts', () => {
    const tokens = new SessionTokens(sessionKey(SECRET, 'c1'));
    const big = Number.MAX_SAFE_INTEGER - 10;
    const merged = mergeSeen('home', [{ replica: replica(1), count: big }, { replica: replica(2), count: 100 }], EMPTY_SESSION);
    expect(merged.count).toBe(Number.MAX_SAFE_INTEGER);
    const token = tokens.sign(remember(EMPTY_SESSION, [{ page: 'home', count: merged.count, replicas: merged.replicas }]));
    expect(mergeSeen('home', [], tokens.verify(token)).count).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses tokens from another cluster, another secret, a lone node or edited ones: bad_session', () => {
    const a = new SessionTokens(sessionKey(SECRET, 'c1'));
    const token = a.sign(remember(EMPTY_SESSION, [seen('home', [[1, 5]])]));
    expect(badSession(() => new SessionTokens(sessionKey(SECRET, 'c2')).verify(token))).toBe('bad_session');
    expect(badSession(() => new SessionTokens(sessionKey(`${SECRET}x`, 'c1')).verify(token))).toBe('bad_session');
    expect(badSession(() => new SessionTokens(sessionKey('', 'c1')).verify(token))).toBe('bad_session');
    const raw = Buffer.from(token, 'base64url');
    raw[raw.length - 20] = (raw[raw.length - 20] ?? 0) ^ 1;
    expect(badSession(() => a.verify(raw.toString('base64url')))).toBe('bad_session');
    for (const junk of ['', 'x', '!!!!', 'A'.repeat(MAX_SESSION_TOKEN_CHARS + 1), Buffer.alloc(40).toString('base64url')]) {
      expect(badSession(() => a.verify(junk))).toBe('bad_session');
    }
  });

  it('keeps to 512 characters: latest pages first; a page too big alone drops its smallest slots and keeps its floor', () => {
    const tokens = new SessionTokens(sessionKey(SECRET, 'c1'));
    let session = EMPTY_SESSION;
    for (let i = 0; i < 50; i++) session = remember(session, [seen(`page-${i}`, [[1, 1_000_000 + i], [2, i + 1]])]);
    const token = tokens.sign(session);
    expect(token.length).toBeLessThanOrEqual(MAX_SESSION_TOKEN_CHARS);
    const back = tokens.verify(token);
    expect(back.pages.length).toBeGreaterThan(3);
    expect(back.pages[0]!.hash).toBe(pageHash('page-49'));

    const wide = seen('wide', Array.from({ length: 100 }, (_, i): [number, number] => [i + 1, 1000 - i]));
    const one = tokens.verify(tokens.sign(remember(EMPTY_SESSION, [wide])));
    expect(tokens.sign(remember(EMPTY_SESSION, [wide])).length).toBeLessThanOrEqual(MAX_SESSION_TOKEN_CHARS);
    const page = one.pages[0]!;
    expect(page.floor).toBe(wide.count);
    expect(page.slots.size).toBeLessThan(100);
    expect(page.slots.get(replica(1))).toBe(1000); // the largest kept
    // A node that has none of it still answers at least the floor.
    expect(mergeSeen('wide', [], one).count).toBe(wide.count);
  });

  it('a later answer never lowers what the session remembers', () => {
    const first = remember(EMPTY_SESSION, [seen('home', [[1, 5], [2, 7]])]);
    const later = remember(first, [seen('home', [[1, 3], [3, 2]])]);
    const merged = mergeSeen('home', [], later);
    expect(merged.count).toBe(5 + 7 + 2);
    expect(later.pages[0]!.floor).toBe(12);
  });

  it('is epoch-aware: a reset ends what a token saw before it; a token of a reset the node has not seen is the answer', () => {
    const tokens = new SessionTokens(sessionKey(SECRET, 'c1'));
    // The client saw p at 8 (replicas 1 and 2) in epoch 0.
    const before = tokens.verify(tokens.sign(remember(EMPTY_SESSION, [seen('p', [[1, 5], [2, 3]])])));
    expect(before.pages[0]!.epoch).toBe(0);
    // A node past the reset (epoch 1: replica 1's tombstone, replica 3 counted 2 since): the
    // token's slots and floor are of the ended epoch and ignored.
    const afterReset = [
      { replica: replica(1), count: 0, epoch: 1 },
      { replica: replica(3), count: 2, epoch: 1 },
    ];
    const ignored = mergeSeen('p', afterReset, before);
    expect(ignored).toEqual({ count: 2, epoch: 1, replicas: new Map([[replica(1), 0], [replica(3), 2]]) });
    // The new token is of epoch 1 and forgets the old slots and floor.
    const next = tokens.verify(tokens.sign(remember(before, [{ page: 'p', ...ignored }])));
    expect(next.pages[0]).toMatchObject({ epoch: 1, floor: 2 });
    expect([...next.pages[0]!.slots]).toEqual([[replica(3), 2]]);

    // A node that has not seen the reset (epoch 0, p at 9): the token's epoch-1 values are the answer.
    const stale = [
      { replica: replica(1), count: 6 },
      { replica: replica(2), count: 3 },
    ];
    expect(mergeSeen('p', stale, next)).toEqual({ count: 2, epoch: 1, replicas: new Map([[replica(3), 2]]) });
    // The same epoch: max-merge, never below the floor.
    const same = mergeSeen('p', [{ replica: replica(3), count: 1, epoch: 1 }, { replica: replica(4), count: 4, epoch: 1 }], next);
    expect(same).toMatchObject({ count: 2 + 4, epoch: 1 });
    // Without the page in the token: exactly the node's slots.
    expect(mergeSeen('p', stale, EMPTY_SESSION)).toMatchObject({ count: 9, epoch: 0 });
  });

  it('answers exactly store.count(page) without a token, before and after a reset, and a pre-reset token adds nothing', async () => {
    const store = await openMemoryStore();
    const p = 'p' as PageName;
    try {
      await store.increment([{ page: p, by: 5 }]);
      const before = mergeSeen('p', store.pageSlots(p), EMPTY_SESSION);
      expect(before.count).toBe(store.count(p));
      const session = remember(EMPTY_SESSION, [{ page: 'p', ...before }]);
      store.reset([p]);
      await store.increment([{ page: p, by: 2 }]);
      const slots = store.pageSlots(p);
      expect(mergeSeen('p', slots, EMPTY_SESSION)).toMatchObject({ count: store.count(p), epoch: 1 });
      expect(mergeSeen('p', slots, session).count).toBe(2);
    } finally {
      await store.close();
    }
  });
});
