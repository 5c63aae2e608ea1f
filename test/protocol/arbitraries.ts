/**
 * fast-check arbitraries for every peer-protocol message, valid by construction. Reused by the
 * replication tests (e.g. to feed a peer random but well-formed traffic).
 */
import fc from 'fast-check';
import * as encoding from 'lib0/encoding';
import type { Slot } from '../../src/crdt/g-counter.js';
import type { SeqRange } from '../../src/crdt/version-vector.js';
import { isPageName, MAX_PAGE_NAME_BYTES, type PageName, type ReplicaId } from '../../src/ids.js';
import {
  MAX_CLUSTER_NAME_BYTES,
  MAX_NODE_NAME_BYTES,
  MAX_REASON_BYTES,
  NONCE_BYTES,
  PROOF_BYTES,
  type Message,
  type MessageType,
  type RejectCode,
  type ReplicaSlot,
} from '../../src/protocol/messages.js';

const MAX_U32 = 0xffff_ffff;

export const replicaIdArb: fc.Arbitrary<ReplicaId> = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((bytes) => Buffer.from(bytes).toString('hex') as ReplicaId);

/** Short names of any valid characters, plus names right at the 256-byte limit. */
export const pageNameArb: fc.Arbitrary<PageName> = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).filter(isPageName) },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(MAX_PAGE_NAME_BYTES), '€'.repeat(85) + 'a', '\ufeffbom', '/home') },
) as fc.Arbitrary<PageName>;

function utf8Within(maxBytes: number): fc.Arbitrary<string> {
  return fc.string({ unit: 'binary', maxLength: maxBytes }).filter((s) => Buffer.byteLength(s) <= maxBytes);
}

/** Safe integers with a bias towards both ends, 2^53-1 included. */
export function safeIntArb(min: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min, max: min + 200 }),
    fc.integer({ min, max: Number.MAX_SAFE_INTEGER }),
    fc.constant(Number.MAX_SAFE_INTEGER),
  );
}

export const u32Arb = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: MAX_U32 }), fc.constant(MAX_U32));

/** A seq range `(after, upTo]` with 0 ≤ after < upTo ≤ 2^53-1. */
export function seqRangeArb(replica: fc.Arbitrary<ReplicaId> = replicaIdArb): fc.Arbitrary<SeqRange> {
  return fc
    .tuple(replica, safeIntArb(0), safeIntArb(0))
    .filter(([, a, b]) => a !== b)
    .map(([r, a, b]) => ({ replica: r, after: Math.min(a, b), upTo: Math.max(a, b) }));
}

/** A slot's count and reset epoch: count ≥ 1 at epoch 0 (absent), or count ≥ 0 at an epoch ≥ 1. */
export const countEpochArb: fc.Arbitrary<{ count: number; epoch?: number }> = fc.oneof(
  fc.record({ count: safeIntArb(1) }),
  fc.record({ count: safeIntArb(0), epoch: safeIntArb(1) }),
);

export const slotArb: fc.Arbitrary<Slot> = fc
  .tuple(fc.record({ page: pageNameArb, replica: replicaIdArb, seq: safeIntArb(1) }), countEpochArb)
  .map(([slot, value]) => ({ ...slot, ...value }));

export const helloArb = fc.record({
  type: fc.constant('hello' as const),
  cluster: utf8Within(MAX_CLUSTER_NAME_BYTES),
  replica: replicaIdArb,
  node: utf8Within(MAX_NODE_NAME_BYTES),
  nonce: fc.uint8Array({ minLength: NONCE_BYTES, maxLength: NONCE_BYTES }),
});

export const authArb = fc.record({
  type: fc.constant('auth' as const),
  proof: fc.uint8Array({ minLength: PROOF_BYTES, maxLength: PROOF_BYTES }),
});

export const rejectCodeArb: fc.Arbitrary<RejectCode> = fc.constantFrom(
  'protocol_version',
  'cluster',
  'auth',
  'self',
  'duplicate',
  'bad_frame',
  'shutting_down',
);

export const rejectArb = fc.record({ type: fc.constant('reject' as const), code: rejectCodeArb, reason: utf8Within(MAX_REASON_BYTES) });

export const vvArb = fc.record({
  type: fc.constant('vv' as const),
  vv: fc.uniqueArray(fc.tuple(replicaIdArb, safeIntArb(1)), { selector: ([r]) => r, maxLength: 8 }).map((entries) => new Map(entries)),
});

/** Slots of a few replicas, so the replica table is shared between slots. */
export const slotsArb = fc.record({
  type: fc.constant('slots' as const),
  round: u32Arb,
  index: u32Arb,
  slots: fc
    .array(replicaIdArb, { minLength: 1, maxLength: 3 })
    .chain((replicas) =>
      fc.array(
        fc
          .tuple(fc.record({ page: pageNameArb, replica: fc.constantFrom(...replicas), seq: safeIntArb(1) }), countEpochArb)
          .map(([slot, value]) => ({ ...slot, ...value })),
        { maxLength: 20 },
      ),
    ),
});

export const coveredArb = fc.record({
  type: fc.constant('covered' as const),
  round: u32Arb,
  chunks: u32Arb,
  ranges: fc.array(seqRangeArb(), { maxLength: 6 }),
});

/** A slot's key: a total (none), an hour or day bucket, or a register (its count a rank, 1–51). */
const seriesKeyArb: fc.Arbitrary<{ kind?: 1 | 2 | 3; t?: number }> = fc.oneof(
  fc.constant({}),
  fc.record({ kind: fc.constantFrom(1 as const, 2 as const), t: fc.integer({ min: 0, max: 2 ** 40 }) }),
  fc.record({ kind: fc.constant(3 as const), t: fc.integer({ min: 0, max: 2 ** 40 }) }),
);

export const deltaArb = seqRangeArb().chain((range) =>
  fc.record({
    type: fc.constant('delta' as const),
    range: fc.constant(range),
    slots: fc.array(
      fc
        .tuple(fc.record({ page: pageNameArb, seq: fc.integer({ min: range.after + 1, max: range.upTo }) }), countEpochArb, seriesKeyArb)
        .map(([slot, value, key]): ReplicaSlot => {
          if (key.kind === undefined) return { ...slot, ...value };
          // A series slot counts at least 1; a register's count is a rank of at most 51.
          const count = key.kind === 3 ? 1 + (value.count % 51) : Math.max(1, value.count);
          return { ...slot, ...value, count, ...key };
        }),
      { maxLength: 20 },
    ),
  }),
);

/** A y-protocols awareness update, encoded the way `encodeAwarenessUpdate` does. */
export const awarenessUpdateArb: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.tuple(
      fc.integer({ min: 0, max: MAX_U32 }),
      fc.nat(),
      fc.option(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }), { nil: null }),
    ),
    { maxLength: 4 },
  )
  .map((entries) => {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, entries.length);
    for (const [client, clock, state] of entries) {
      encoding.writeVarUint(encoder, client);
      encoding.writeVarUint(encoder, clock);
      encoding.writeVarString(encoder, JSON.stringify(state));
    }
    return encoding.toUint8Array(encoder);
  });

export const awarenessArb = fc.record({ type: fc.constant('awareness' as const), update: awarenessUpdateArb });
export const pingArb = fc.record({ type: fc.constant('ping' as const), id: safeIntArb(0) });
export const pongArb = fc.record({ type: fc.constant('pong' as const), id: safeIntArb(0) });

export const messageArbs: { readonly [T in MessageType]: fc.Arbitrary<Extract<Message, { type: T }>> } = {
  hello: helloArb,
  auth: authArb,
  reject: rejectArb,
  vv: vvArb,
  slots: slotsArb,
  covered: coveredArb,
  delta: deltaArb,
  awareness: awarenessArb,
  ping: pingArb,
  pong: pongArb,
  vvPart: vvArb.map((m) => ({ type: 'vvPart' as const, vv: m.vv })),
  digest: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((digest) => ({ type: 'digest' as const, digest })),
  ihave: fc.array(seqRangeArb(), { minLength: 1, maxLength: 6 }).map((ranges) => ({ type: 'ihave' as const, ranges })),
  graft: fc.array(seqRangeArb(), { minLength: 1, maxLength: 6 }).map((ranges) => ({ type: 'graft' as const, ranges })),
  prune: fc.constant({ type: 'prune' as const }),
};

export const messageArb: fc.Arbitrary<Message> = fc.oneof(...Object.values(messageArbs) as fc.Arbitrary<Message>[]);
