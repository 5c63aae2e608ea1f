/**
 * Which peers this node keeps sessions with. Up to BOUNDED_DEGREE_ABOVE_NODES nodes (counted as
 * the distinct addresses discovery gives, see `nodes()`) every peer is dialled: the full mesh, exactly as before. Past it
 * the node is in bounded-degree mode: it dials `dialCount` peers picked at random from the
 * discovered addresses (the rest are its passive view) and takes inbound sessions only while it
 * has fewer than `maxDegree − dialCount` of them (a node with more is refused with `full`), so no
 * node holds more than `maxDegree` sessions. With `active = ⌈log2 N⌉ + 1`, a node dials
 * ⌈active / 2⌉ and holds at most active + 2: 4 and 10 at 100 nodes, 6 and 13 at 1,000. Each node
 * dialling k ≥ 2 random others makes a connected graph with high probability (a component of a
 * k-out graph has more than k nodes; at N ≤ 2k + 1 it is always connected).
 *
 * A dialled peer that failed (its dial or redial failed REPLACE_AFTER_FAILURES times in a row,
 * or it refused us as `full`, or it is this node) is replaced by a random passive address, and
 * that address is not picked again for AVOID_MS. Discovery keeps the passive view current: an
 * address it drops leaves both views, a new one joins the passive view.
 */
import type { DialTarget } from './peer-directory.js';
import { sourceOf } from './peer-limits.js';

export const BOUNDED_DEGREE_ABOVE_NODES = 16;
/** Failed dials in a row after which a dialled peer is replaced (bounded-degree mode). */
export const REPLACE_AFTER_FAILURES = 2;
/** A replaced address is not picked again for this long, unless nothing else is left. */
export const AVOID_MS = 60_000;
/**
 * Inbound sessions taken at most from one host (the remote address without its port) in
 * bounded mode. Without it one host with the cluster secret could hold every inbound slot under
 * fresh replica ids and leave honest dialers only `full` (an eclipse): with it, an attacker needs
 * ⌈inboundCap / 2⌉ hosts (3 at 100 nodes) to fill a node's inbound side, and its dialled peers
 * (chosen by this node, from discovery) stay out of its reach. Nodes that share one host (several
 * processes behind one address) take at most 2 inbound sessions from each other in bounded mode.
 */
export const MAX_INBOUND_PER_HOST = 2;

export interface ActiveViewOptions {
  /** Float in [0, 1). */
  readonly random: () => number;
  /** Past this many nodes the view is bounded; default BOUNDED_DEGREE_ABOVE_NODES (0: always). */
  readonly aboveNodes?: number;
  /** Peers dialled in bounded mode; default ⌈(⌈log2 N⌉ + 1) / 2⌉. */
  readonly dial?: number;
  /** Most sessions in bounded mode; default ⌈log2 N⌉ + 3. */
  readonly maxDegree?: number;
}

type TargetView = Pick<DialTarget, 'address' | 'state' | 'attempts' | 'lastError'>;

/** The active set's size for N nodes: ⌈log2 N⌉ + 1. */
export function activeSize(nodes: number): number {
  return Math.ceil(Math.log2(Math.max(2, nodes))) + 1;
}

export class ActiveView {
  private addresses: readonly string[] = [];
  private readonly dialled = new Set<string>();
  private readonly selves = new Set<string>();
  private readonly avoid = new Map<string, number>();
  private boundedMode = false;

  constructor(private readonly options: ActiveViewOptions) {}

  get bounded(): boolean {
    return this.boundedMode;
  }

  /** Peers dialled in bounded mode for the current address list. */
  get dialCount(): number {
    return this.options.dial ?? Math.ceil(activeSize(this.nodes()) / 2);
  }

  /** Sessions a node holds at most in bounded mode (unbounded in the mesh). */
  get maxDegree(): number {
    return this.boundedMode ? (this.options.maxDegree ?? activeSize(this.nodes()) + 2) : Number.POSITIVE_INFINITY;
  }

  /** Inbound sessions taken at most. */
  get inboundCap(): number {
    return this.boundedMode ? Math.max(1, this.maxDegree - this.dialCount) : Number.POSITIVE_INFINITY;
  }

  /**
   * Whether an inbound session from `remote` may stay, with inbound sessions from `open` already
   * held: always in the mesh; in bounded mode below `inboundCap` and MAX_INBOUND_PER_HOST from its host.
   */
  admitsInbound(remote: string, open: Iterable<string>): boolean {
    if (!this.boundedMode) return true;
    const host = sourceOf(remote);
    let total = 0;
    let fromHost = 0;
    for (const address of open) {
      total += 1;
      if (sourceOf(address) === host) fromHost += 1;
    }
    return total < this.inboundCap && fromHost < MAX_INBOUND_PER_HOST;
  }

  /** The addresses from discovery; returns the ones to dial. */
  setPeers(addresses: readonly string[], now: number): readonly string[] {
    this.addresses = [...new Set(addresses)];
    const present = new Set(this.addresses);
    for (const address of [...this.dialled]) if (!present.has(address)) this.dialled.delete(address);
    this.boundedMode = this.nodes() > (this.options.aboveNodes ?? BOUNDED_DEGREE_ABOVE_NODES);
    if (!this.boundedMode) {
      this.dialled.clear();
      return this.addresses;
    }
    this.fill(now);
    return [...this.dialled];
  }

  /**
   * Replaces dialled peers that failed (see the file comment); returns the new dial list, or
   * undefined when nothing changed.
   */
  replaceFailed(targets: Iterable<TargetView>, now: number): readonly string[] | undefined {
    if (!this.boundedMode) return undefined;
    let changed = false;
    for (const target of targets) {
      if (!this.dialled.has(target.address)) continue;
      const refusedFull = target.state === 'disconnected' && target.lastError?.includes('(full)') === true;
      const failed = target.state === 'disconnected' && target.attempts >= REPLACE_AFTER_FAILURES;
      if (target.state === 'self') this.selves.add(target.address);
      if (target.state !== 'self' && !refusedFull && !failed) continue;
      this.dialled.delete(target.address);
      this.avoid.set(target.address, now + AVOID_MS);
      changed = true;
    }
    if (!changed) return undefined;
    this.fill(now);
    return [...this.dialled];
  }

  /**
   * Nodes in the cluster as discovery sees it: the number of distinct discovered addresses (at
   * least 1). DNS and shared PEERS lists include this node's own address, others do not, and a
   * node learns which address is its own only by dialling it, so this node is not added: the
   * count is the same on every node of a cluster whichever addresses it has dialled, and a
   * cluster of up to 16 nodes stays a mesh whether or not discovery lists the node itself (one of
   * 17 nodes whose list leaves itself out counts 16 and stays a mesh too; conservative).
   */
  private nodes(): number {
    return Math.max(1, this.addresses.length);
  }

  /** Tops the dial set up to `dialCount` with random passive addresses, avoided ones last. */
  private fill(now: number): void {
    for (const [address, until] of this.avoid) if (until <= now) this.avoid.delete(address);
    const free = this.addresses.filter((a) => !this.dialled.has(a) && !this.selves.has(a));
    const fresh = free.filter((a) => !this.avoid.has(a));
    const pools = [fresh, free.filter((a) => this.avoid.has(a))];
    for (const pool of pools) {
      while (this.dialled.size < this.dialCount && pool.length > 0) {
        const i = Math.floor(this.options.random() * pool.length);
        this.dialled.add(pool[i]!);
        pool[i] = pool[pool.length - 1]!;
        pool.pop();
      }
    }
  }
}
