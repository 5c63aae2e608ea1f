/**
 * Addresses and ports for real processes on loopback. Every 127/8 address is loopback on Linux,
 * so a cluster can take a random /24 of its own and never share an address with a test file
 * running in parallel. `freePortOn` is the benchmark's (one implementation for both).
 */
import { randomInt } from 'node:crypto';

export { freePortOn } from '../../bench/loopback-ports.js';

/** A random /24 inside 127/8, avoiding 127.0.0.0/24 (where other tests and services live). */
export function randomLoopbackSubnet(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}`;
}
