/**
 * The visitor key of unique visitors (src/crdt/hyperloglog.ts): HMAC-SHA256 over the client
 * address, the User-Agent and the site, keyed with a key of the UTC day derived by HKDF from the
 * secret. Every node with the same secret computes the same key for the same visitor on the same
 * day, so a visitor counted on two nodes is one register; the next day the keys are unrelated,
 * and no cookie, address or User-Agent is stored or sent anywhere: only the register it picks
 * (14 bits) and a rank (6 bits) leave this function.
 *
 * The secret is CLUSTER_SECRET; a lone node without one uses a random secret per process, so its
 * uniques of a day start again at each restart (documented in the README).
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { registerOf, type VisitorRegister } from '../crdt/hyperloglog.js';
import { dayOf } from '../crdt/series.js';

/** Daily keys remembered (today's, and yesterday's around midnight). */
const KEYS_KEPT = 4;

export class VisitorKeys {
  private readonly secret: Buffer;
  private readonly keys = new Map<number, Buffer>();

  constructor(secret?: string | Uint8Array) {
    this.secret = secret === undefined || secret.length === 0 ? randomBytes(32) : Buffer.from(secret);
  }

  /** The register of this visitor on `site` at time `nowMs`. */
  register(input: { address: string; userAgent: string; site: string }, nowMs: number): VisitorRegister {
    const day = dayOf(nowMs);
    const mac = createHmac('sha256', this.dayKey(day));
    // Length-prefixed, so no two inputs run together.
    for (const part of [input.address, input.userAgent, input.site]) mac.update(`${Buffer.byteLength(part)}:`).update(part);
    return registerOf(mac.digest());
  }

  private dayKey(day: number): Buffer {
    let key = this.keys.get(day);
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', this.secret, 'distributed-sqlite/visitor-key', `day:${day}`, 32));
      if (this.keys.size >= KEYS_KEPT) this.keys.clear();
      this.keys.set(day, key);
    }
    return key;
  }
}
