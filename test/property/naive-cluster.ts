/**
 * The scheme this project replaces, as a model: each node reads its row, writes `count + by`, and
 * pushes the whole row to every other node, which overwrites its own. Messages go through the
 * same kind of fault-injecting queue as the real code's. The convergence property must fail on
 * it: two nodes counting at once overwrite each other's increments.
 */
import type { ClusterUnderTest, IncrementStep, Page } from './schedule.js';

interface RowMessage {
  readonly from: number;
  readonly to: number;
  readonly page: string;
  readonly count: number;
}

export class NaiveCluster implements ClusterUnderTest {
  private readonly rows: Array<Map<string, number>>;
  private readonly up: boolean[];
  private readonly snapshots: Array<Array<Map<string, number>>>;
  private queue: RowMessage[] = [];
  private readonly cut = new Set<string>();

  constructor(private readonly count: number) {
    this.rows = Array.from({ length: count }, () => new Map());
    this.up = Array.from({ length: count }, () => true);
    this.snapshots = Array.from({ length: count }, () => []);
  }

  private reachable(a: number, b: number): boolean {
    return !this.cut.has(`${Math.min(a, b)}-${Math.max(a, b)}`);
  }

  async increment(node: number, page: Page, by: number): Promise<number | undefined> {
    if (!this.up[node]) return undefined;
    const row = this.rows[node]!;
    const count = (row.get(page) ?? 0) + by;
    row.set(page, count);
    for (let to = 0; to < this.count; to++) {
      if (to !== node && this.reachable(node, to)) this.queue.push({ from: node, to, page, count });
    }
    return count;
  }

  async incrementMany(increments: readonly IncrementStep[]): Promise<Array<number | undefined>> {
    const out: Array<number | undefined> = [];
    for (const inc of increments) out.push(await this.increment(inc.node, inc.page, inc.by));
    return out;
  }

  inFlight(): number {
    return this.queue.length;
  }

  async deliver(index: number): Promise<void> {
    const [message] = this.queue.splice(index, 1);
    if (message !== undefined && this.up[message.to]) this.rows[message.to]!.set(message.page, message.count);
  }

  async flow(count: number): Promise<void> {
    for (let i = 0; i < count && this.queue.length > 0; i++) await this.deliver(0);
  }

  drop(index: number): void {
    this.queue.splice(index, 1);
  }

  duplicate(index: number): void {
    const message = this.queue[index];
    if (message !== undefined) this.queue.splice(index + 1, 0, message);
  }

  partition(groupA: readonly number[], groupB: readonly number[]): void {
    for (const a of groupA) for (const b of groupB) this.cut.add(`${Math.min(a, b)}-${Math.max(a, b)}`);
    this.queue = this.queue.filter((m) => this.reachable(m.from, m.to));
  }

  heal(): void {
    this.cut.clear();
  }

  async tick(): Promise<void> {}

  async crash(node: number): Promise<void> {
    this.up[node] = false;
    this.queue = this.queue.filter((m) => m.to !== node);
  }

  async stop(node: number): Promise<void> {
    await this.crash(node);
  }

  async restart(node: number): Promise<void> {
    this.up[node] = true;
  }

  snapshot(node: number): void {
    if (this.up[node]) this.snapshots[node]!.push(new Map(this.rows[node]));
  }

  async restoreStale(node: number, pick: number): Promise<Map<string, number> | undefined> {
    const copies = this.snapshots[node]!;
    if (copies.length === 0) return undefined;
    const copy = copies[Math.min(copies.length - 1, Math.floor(pick * copies.length))]!;
    this.queue = this.queue.filter((m) => m.from !== node && m.to !== node);
    const lost = new Map<string, number>();
    for (const [page, count] of this.rows[node]!) {
      const elsewhere = Math.max(copy.get(page) ?? 0, ...this.rows.filter((_, i) => i !== node).map((row) => row.get(page) ?? 0));
      if (count > elsewhere) lost.set(page, count - elsewhere);
    }
    this.rows[node] = new Map(copy);
    this.up[node] = true;
    return lost;
  }

  isUp(node: number): boolean {
    return this.up[node]!;
  }

  totals(node: number): Map<string, number> {
    return new Map(this.rows[node]);
  }

  async settle(): Promise<void> {
    this.heal();
    this.up.fill(true);
    await this.flow(Number.POSITIVE_INFINITY);
  }

  checkInvariant(): string | undefined {
    return undefined;
  }

  async dispose(): Promise<void> {}
}
