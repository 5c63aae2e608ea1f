/**
 * A test's HTTP calls to a running node: counting views, reading totals and the cluster status.
 * Every request is bounded in time; an answer other than 200 throws with its body.
 *
 *   await increment(node, 'home', 3);
 *   expect(await pageCount(node, 'home')).toBe(3);
 *   expect(peerAt(await clusterStatus(node), other.address)?.state).toBe('connected');
 */
import type { ClusterStatus, PeerStatus } from '../../src/cluster-status.js';
import { TEST_WRITE_TOKEN } from './spawn-node.js';

/** Bound on one HTTP request of a test to a node. */
export const REQUEST_TIMEOUT_MS = 5_000;

// The JSON of GET /api/cluster, typed by the node's own definition.
export type { ClusterStatus, PeerStatus } from '../../src/cluster-status.js';

/** Anything that serves the node's HTTP API at `url` (a ClusterNode, a SpawnedNode). */
export interface HttpNode {
  readonly url: string;
  /** The cluster port's URL, where the full `/api/cluster` is served; undefined for a lone node. */
  readonly privateUrl?: string | undefined;
}

async function request(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function json<T>(response: Response): Promise<T> {
  if (response.status !== 200) throw new Error(`${response.url}: HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Headers of a write-token holder (an edge collector): `by`, batches, no rate limit. */
export const WRITER_HEADERS: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_WRITE_TOKEN}` };

/** Counts `by` views of `page` at `node` as a write-token holder; resolves with the page's total there. */
export async function increment(node: HttpNode, page: string, by = 1): Promise<number> {
  const init: RequestInit =
    by === 1 ? { method: 'POST', headers: WRITER_HEADERS } : { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ by }) };
  const body = await json<{ count: number }>(await request(`${node.url}/api/pages/${encodeURIComponent(page)}/views`, init));
  return body.count;
}

/** `POST /api/views` (write token): all the views in one request. */
export async function incrementBatch(node: HttpNode, views: ReadonlyArray<{ page: string; by: number }>): Promise<void> {
  await json(await request(`${node.url}/api/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views }) }));
}

/** Counts one view of `page` at `node` as a write-token holder, whatever the answer: its status and, if refused, its error code. */
export async function tryIncrement(node: HttpNode, page: string): Promise<{ status: number; code?: string }> {
  const response = await request(`${node.url}/api/pages/${encodeURIComponent(page)}/views`, { method: 'POST', headers: WRITER_HEADERS });
  const body = (await response.json()) as { error?: { code: string } };
  return { status: response.status, ...(body.error !== undefined ? { code: body.error.code } : {}) };
}

/** `GET /readyz`: its status and, when not ready, the error's code and message. */
export async function readiness(node: HttpNode): Promise<{ status: number; code?: string; message?: string }> {
  const response = await request(`${node.url}/readyz`);
  const body = (await response.json()) as { error?: { code: string; message: string } };
  return { status: response.status, ...(body.error ?? {}) };
}

export async function pageCount(node: HttpNode, page: string): Promise<number> {
  return (await json<{ count: number }>(await request(`${node.url}/api/pages/${encodeURIComponent(page)}`))).count;
}

/** Every page's total at `node`, following the pagination. */
export async function totals(node: HttpNode): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let after: string | null = null;
  for (let pageIndex = 0; pageIndex < 1_000; pageIndex++) {
    const query: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const body: { pages: Array<{ page: string; count: number }>; next: string | null } = await json(await request(`${node.url}/api/pages?limit=1000${query}`));
    for (const row of body.pages) out[row.page] = row.count;
    if (body.next === null) return out;
    after = body.next;
  }
  throw new Error('more than 1000 pages of pages');
}

/** The full (private) status, from the cluster port. */
export async function clusterStatus(node: HttpNode): Promise<ClusterStatus> {
  if (node.privateUrl === undefined) throw new Error(`${node.url} has no cluster port (no CLUSTER_SECRET): the full status is not served`);
  return json<ClusterStatus>(await request(`${node.privateUrl}/api/cluster`));
}

/** This node's view of the peer at `address` (by the address it dials), if listed. */
export function peerAt(status: ClusterStatus, address: string): PeerStatus | undefined {
  return status.peers.find((peer) => peer.address === address);
}

/** True when `node` has an open session with the node whose replica id is `replicaId`. */
export function connectedTo(status: ClusterStatus, replicaId: string): boolean {
  return status.peers.some((peer) => peer.state === 'connected' && peer.replicaId === replicaId);
}
