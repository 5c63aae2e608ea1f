import { randomBytes } from 'node:crypto';
import { hasLoneSurrogate } from './utf8.js';

declare const replicaBrand: unique symbol;
declare const pageBrand: unique symbol;

/** 128 random bits as 32 lowercase hex characters. Never derived from host or address. */
export type ReplicaId = string & { readonly [replicaBrand]: true };
/** A validated page name: 1–256 bytes of UTF-8, no control characters. */
export type PageName = string & { readonly [pageBrand]: true };

export const REPLICA_ID_BYTES = 16;
export const MAX_PAGE_NAME_BYTES = 256;

/** Source of randomness, injectable so tests and simulations are reproducible. */
export type RandomBytes = (size: number) => Uint8Array;

export const cryptoRandom: RandomBytes = (size) => randomBytes(size);

export function newReplicaId(random: RandomBytes = cryptoRandom): ReplicaId {
  return Buffer.from(random(REPLICA_ID_BYTES)).toString('hex') as ReplicaId;
}

const REPLICA_ID_PATTERN = /^[0-9a-f]{32}$/;

export function isReplicaId(value: unknown): value is ReplicaId {
  return typeof value === 'string' && REPLICA_ID_PATTERN.test(value);
}

export function replicaIdToBytes(id: ReplicaId): Uint8Array {
  return Uint8Array.from(Buffer.from(id, 'hex'));
}

export function replicaIdFromBytes(bytes: Uint8Array): ReplicaId | undefined {
  if (bytes.length !== REPLICA_ID_BYTES) return undefined;
  return Buffer.from(bytes).toString('hex') as ReplicaId;
}

// C0 controls, DEL and C1 controls. Lone surrogates cannot survive UTF-8 and are refused too.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a string is not a page name, or undefined when it is one. */
export function pageNameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'page name must be a string';
  if (value.length === 0) return 'page name must not be empty';
  if (hasLoneSurrogate(value)) return 'page name must be valid UTF-8';
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_PAGE_NAME_BYTES) return `page name is ${bytes} bytes of UTF-8; at most ${MAX_PAGE_NAME_BYTES} are allowed`;
  if (CONTROL_CHARACTERS.test(value)) return 'page name must not contain control characters';
  return undefined;
}

export function isPageName(value: unknown): value is PageName {
  return pageNameProblem(value) === undefined;
}
