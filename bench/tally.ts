/**
 * Views per page, as the benchmark counts them: what was acknowledged, and what has an unknown
 * outcome (the request may or may not have counted). The loss check compares both with the
 * nodes' final totals.
 */
export type Tally = Map<string, number>;

export function addTo(tally: Tally, page: string, by: number): void {
  tally.set(page, (tally.get(page) ?? 0) + by);
}

export function addAll(into: Tally, from: Tally): void {
  for (const [page, by] of from) addTo(into, page, by);
}

export function total(tally: Tally): number {
  let sum = 0;
  for (const by of tally.values()) sum += by;
  return sum;
}
