/**
 * One fan-out's writes, shared: the clients of one store change each hold a run of frames (one
 * per changed page they follow and are due for). Clients that hold the very same run (the same
 * frames, in the same order: followers of the same pages at the same pace) are sent one Buffer,
 * the run joined once, so the fan-out costs one write per client whatever the number of pages,
 * and no copy per client. A run only one client holds is not joined (its frames are written as
 * they are, in one corked write): joining it would copy bytes for nobody else.
 *
 * Lives for one fan-out: what it joined is referenced by the sockets it was written to, nothing
 * else.
 */

export class SharedRuns {
  /** Frame → a small id, for the run keys. */
  private readonly ids = new Map<Buffer, number>();
  private readonly runs = new Map<string, { holders: number; joined?: Buffer }>();
  private joins = 0;

  /** Runs joined so far (each is written to two or more clients). */
  get joined(): number {
    return this.joins;
  }

  /** Notes that a client will be sent `frames`; returns the run's key for `bytesOf`. */
  add(frames: readonly Buffer[]): string {
    const key = this.keyOf(frames);
    const run = this.runs.get(key);
    if (run === undefined) this.runs.set(key, { holders: 1 });
    else run.holders++;
    return key;
  }

  /** The joined run when two or more clients hold it (joined on first ask), else undefined. */
  bytesOf(key: string, frames: readonly Buffer[]): Buffer | undefined {
    const run = this.runs.get(key);
    if (run === undefined || run.holders < 2 || frames.length < 2) return undefined;
    if (run.joined === undefined) {
      run.joined = Buffer.concat(frames as Buffer[]);
      this.joins++;
    }
    return run.joined;
  }

  private keyOf(frames: readonly Buffer[]): string {
    let key = '';
    for (const frame of frames) {
      let id = this.ids.get(frame);
      if (id === undefined) this.ids.set(frame, (id = this.ids.size));
      key += `${id},`;
    }
    return key;
  }
}
