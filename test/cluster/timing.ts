/**
 * Timings seen by the cluster tests (convergence, detection of a silent peer …), printed when
 * CLUSTER_TIMINGS=1. They are for reading, never asserted beyond the bounds a test states:
 * numbers worth comparing come from `npm run bench`.
 */
export function reportTiming(label: string, values: Readonly<Record<string, number>>): void {
  if (process.env.CLUSTER_TIMINGS !== '1') return;
  const text = Object.entries(values)
    .map(([key, value]) => `${key}=${Number.isInteger(value) ? value : value.toFixed(0)}`)
    .join(' ');
  process.stdout.write(`[cluster timing] ${label}: ${text}\n`);
}
