/**
 * The listeners of a store's `onCommit` and `onChange`, shared by both implementations. A
 * listener that throws is logged and skipped: a failing subscriber (the live feed, replication)
 * must never undo or block a commit that already happened.
 */
import type { Log } from '../log.js';
import type { Delta, PageCount } from './store.js';

export type CommitListener = (delta: Delta) => void;
export type ChangeListener = (changed: readonly PageCount[], origin: 'local' | 'merge') => void;

export class StoreEvents {
  private readonly commitListeners = new Set<CommitListener>();
  private readonly changeListeners = new Set<ChangeListener>();

  constructor(private readonly log: Pick<Log, 'error'>) {}

  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  onChange(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  emitCommit(delta: Delta): void {
    for (const listener of this.commitListeners) {
      try {
        listener(delta);
      } catch (error) {
        this.log.error({ err: error }, 'commit listener failed');
      }
    }
  }

  emitChange(changed: readonly PageCount[], origin: 'local' | 'merge'): void {
    for (const listener of this.changeListeners) {
      try {
        listener(changed, origin);
      } catch (error) {
        this.log.error({ err: error }, 'change listener failed');
      }
    }
  }
}
