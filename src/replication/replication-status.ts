/**
 * The cluster status of a replicating node, in the JSON shape of `GET /api/cluster`
 * (src/cluster-status.ts): every dial target and every open session as a peer, and the
 * membership gossiped by awareness. A member is `live` while its awareness state is fresh, unless
 * this node dials it directly and that link is down (then it shows as unreachable at once rather
 * than after the 30 s awareness timeout).
 */
import type { ClusterStatus, MemberStatus, NodeInfo, PeerStatus } from '../cluster-status.js';
import { lagBehind, vectorToObject, type VersionVector } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';
import type { DialTarget } from './peer-directory.js';
import type { PeerSession } from './peer-session.js';
import type { Member } from './presence.js';

export interface StatusInputs {
  readonly node: NodeInfo;
  readonly versionVector: VersionVector;
  readonly digest: string;
  readonly targets: Iterable<DialTarget>;
  /** Every open session, one per peer replica. */
  readonly sessions: Iterable<PeerSession>;
  readonly sessionOf: (replica: ReplicaId) => PeerSession | undefined;
  readonly members: readonly Member[];
  /** The wall time of a `Timers.now()` reading (`since`, `lastSyncAt` are monotonic readings). */
  readonly wallTime: (monotonic: number) => number;
}

export function clusterStatus(inputs: StatusInputs): ClusterStatus {
  const peers = peerStatuses(inputs);
  return {
    node: inputs.node,
    peers,
    versionVector: vectorToObject(inputs.versionVector),
    membership: memberStatuses(inputs.members, peers),
    digest: inputs.digest,
  };
}

function peerStatuses(inputs: StatusInputs): PeerStatus[] {
  const peers: PeerStatus[] = [];
  const shown = new Set<PeerSession>();
  for (const target of inputs.targets) {
    const session = target.session?.phase === 'open' ? target.session : target.replica ? inputs.sessionOf(target.replica) : undefined;
    if (session !== undefined && session.phase === 'open') {
      shown.add(session);
      peers.push(connectedPeer(target.address, session, inputs));
    } else {
      peers.push(
        defined({
          address: target.address,
          replicaId: target.replica,
          name: target.name,
          state: target.state === 'covered' ? 'connecting' : target.state,
          since: iso(target.since, inputs.wallTime),
          lastError: target.lastError,
        }),
      );
    }
  }
  for (const session of inputs.sessions) {
    if (!shown.has(session)) peers.push(connectedPeer(session.connection.remoteAddress, session, inputs));
  }
  return peers;
}

function connectedPeer(address: string, session: PeerSession, inputs: StatusInputs): PeerStatus {
  const peerVv = session.peerVv;
  const localVv = inputs.versionVector;
  return defined({
    address,
    state: 'connected',
    since: iso(session.openedAt, inputs.wallTime),
    replicaId: session.peer?.replica,
    name: session.peer?.name,
    direction: session.connection.direction,
    lastSyncAt: iso(session.lastSyncAt, inputs.wallTime),
    lagSeqs: peerVv === undefined ? undefined : lagBehind(peerVv, localVv),
    behindSeqs: peerVv === undefined ? undefined : lagBehind(localVv, peerVv),
    bytesSent: session.bytesSent,
    bytesReceived: session.bytesReceived,
  });
}

function memberStatuses(members: readonly Member[], peers: readonly PeerStatus[]): MemberStatus[] {
  const connected = new Set(peers.filter((p) => p.state === 'connected').map((p) => p.replicaId));
  const down = new Set(peers.filter((p) => p.state !== 'connected' && p.replicaId !== undefined).map((p) => p.replicaId));
  return members.map((member) =>
    defined({
      name: member.name,
      replicaId: member.replicaId,
      address: member.address,
      region: member.region,
      version: member.version,
      startedAt: iso(member.startedAt),
      live: member.local || connected.has(member.replicaId) || !down.has(member.replicaId),
    }),
  );
}

/** ISO 8601 of a time in ms; `wallTime` first turns a monotonic reading into wall time. */
function iso(ms: number | undefined, wallTime?: (monotonic: number) => number): string | undefined {
  return ms === undefined ? undefined : new Date(wallTime === undefined ? ms : wallTime(ms)).toISOString();
}

/** The JSON leaves absent fields out: drop the ones without a value (keeps the key order). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
