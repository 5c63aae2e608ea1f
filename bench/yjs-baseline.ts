/**
 * The obvious way to count with Yjs: a `Y.Map` per document, each increment sets
 * `map[page] = map[page] + 1`, replicas exchange updates. Each set leaves a deleted item behind
 * (Yjs keeps the structure of deleted content to merge concurrent edits), so the encoded state
 * grows with the number of increments, not with the number of pages. Three replicas take turns
 * writing, and every update is applied to the others, as a live cluster would.
 */
import * as Y from 'yjs';
import { round } from './stats.js';

export const YJS_REPLICAS = 3;

export interface YjsPoint {
  readonly increments: number;
  /** `Y.encodeStateAsUpdate(doc).length` of one replica. */
  readonly stateBytes: number;
  readonly bytesPerIncrement: number;
  /** Update bytes exchanged per increment (each update sent to the other replicas). */
  readonly wireBytesPerIncrement: number;
  /** Sum of the map's values on one replica, compared with the increments made. */
  readonly total: number;
}

export function runYjsBaseline(checkpoints: readonly number[], pages: number): YjsPoint[] {
  const docs = Array.from({ length: YJS_REPLICAS }, () => new Y.Doc());
  let wireBytes = 0;
  docs.forEach((doc, i) => {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'remote') return;
      for (let j = 0; j < docs.length; j++) {
        if (j === i) continue;
        Y.applyUpdate(docs[j] as Y.Doc, update, 'remote');
        wireBytes += update.length;
      }
    });
  });
  const sorted = [...checkpoints].sort((a, b) => a - b);
  const points: YjsPoint[] = [];
  let done = 0;
  for (const checkpoint of sorted) {
    for (; done < checkpoint; done++) {
      const doc = docs[done % YJS_REPLICAS] as Y.Doc;
      const map = doc.getMap<number>('counts');
      const page = `page-${done % pages}`;
      map.set(page, (map.get(page) ?? 0) + 1);
    }
    const doc = docs[0] as Y.Doc;
    let total = 0;
    for (const value of doc.getMap<number>('counts').values()) total += value;
    const stateBytes = Y.encodeStateAsUpdate(doc).length;
    points.push({ increments: checkpoint, stateBytes, bytesPerIncrement: round(stateBytes / checkpoint, 2), wireBytesPerIncrement: round(wireBytes / checkpoint, 1), total });
  }
  for (const doc of docs) doc.destroy();
  return points;
}
