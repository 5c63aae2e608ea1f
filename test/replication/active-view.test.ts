import { describe, expect, it } from 'vitest';
import { ActiveView, activeSize, AVOID_MS, BOUNDED_DEGREE_ABOVE_NODES, REPLACE_AFTER_FAILURES } from '../../src/replication/active-view.js';
import { seededRandom } from '../helpers/seeded-random.js';

const addresses = (n: number) => Array.from({ length: n }, (_, i) => `n${i}:1`);

function view(seed = 1) {
  const random = seededRandom(seed);
  return new ActiveView({ random: () => random.next() });
}

describe('the active view (bounded degree past 16 nodes)', () => {
  it('up to 16 nodes dials every peer and takes every inbound session: the full mesh', () => {
    const v = view();
    const peers = addresses(BOUNDED_DEGREE_ABOVE_NODES - 1);
    expect(v.setPeers(peers, 0)).toEqual(peers);
    expect(v.bounded).toBe(false);
    expect(v.inboundCap).toBe(Number.POSITIVE_INFINITY);
  });

  it('16 nodes whose discovery lists the node itself stay a mesh, before and after it dials its own address', () => {
    const v = view();
    const listed = addresses(BOUNDED_DEGREE_ABOVE_NODES); // 15 peers and this node (n0:1)
    expect(v.setPeers(listed, 0)).toEqual(listed);
    expect(v.bounded).toBe(false);
    expect(v.replaceFailed([{ address: 'n0:1', state: 'self', attempts: 0, lastError: undefined }], 1)).toBeUndefined();
    expect(v.setPeers(listed, 2)).toEqual(listed);
    expect(v.bounded).toBe(false);
    // Past 16 addresses every node goes bounded, and learning its own address does not change the mode or the sizes.
    const more = addresses(BOUNDED_DEGREE_ABOVE_NODES + 1);
    const dialled = v.setPeers(more, 3);
    expect(v.bounded).toBe(true);
    const sizes = [v.dialCount, v.maxDegree, v.inboundCap];
    v.replaceFailed([{ address: dialled[0]!, state: 'self', attempts: 0, lastError: undefined }], 4);
    expect(v.bounded).toBe(true);
    expect([v.dialCount, v.maxDegree, v.inboundCap]).toEqual(sizes);
  });

  it('past 16 nodes dials ⌈a/2⌉ distinct peers and holds a + 2 sessions at most (a = ⌈log2 N⌉ + 1)', () => {
    expect(activeSize(100)).toBe(8);
    expect(activeSize(1_000)).toBe(11);
    const v = view();
    const dialled = v.setPeers(addresses(99), 0);
    expect(v.bounded).toBe(true);
    expect(dialled).toHaveLength(4);
    expect(new Set(dialled).size).toBe(4);
    expect(v.maxDegree).toBe(10);
    expect(v.inboundCap).toBe(6);
    // A new address list keeps the peers still in it.
    const again = v.setPeers([...addresses(99), 'n99:1'], 0);
    expect(again).toEqual(dialled);
  });

  it('replaces a dialled peer that refused as full, failed twice in a row, or is this node; avoids it for a while', () => {
    const v = view();
    const dialled = [...v.setPeers(addresses(40), 0)];
    const [full, failing, self, fine] = dialled;
    const targets = [
      { address: full!, state: 'disconnected' as const, attempts: 1, lastError: 'refused by peer (full): this node keeps as many peers as it takes' },
      { address: failing!, state: 'disconnected' as const, attempts: REPLACE_AFTER_FAILURES, lastError: 'connection refused' },
      { address: self!, state: 'self' as const, attempts: 0, lastError: undefined },
      { address: fine!, state: 'disconnected' as const, attempts: 1, lastError: 'connection refused' },
    ];
    const next = v.replaceFailed(targets, 1_000)!;
    expect(next).toHaveLength(dialled.length);
    expect(next).toContain(fine);
    for (const gone of [full, failing, self]) expect(next).not.toContain(gone);
    expect(v.replaceFailed([{ address: fine!, state: 'connected', attempts: 0, lastError: undefined }], 2_000)).toBeUndefined();
    // This node's own address is never dialled again; the others only once nothing fresh is left or AVOID_MS passed.
    const later = v.setPeers(addresses(40), 1_000 + AVOID_MS);
    expect(later).not.toContain(self);
  });
});
