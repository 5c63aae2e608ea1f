/**
 * Work in steps: a generator that yields between small pieces of work (each tens of µs at most)
 * and returns its result. A synchronous caller drains it in one piece (`runSteps`); a caller that
 * must not hold the event loop (a spread commit, a large request body) lets the loop turn between
 * slices of it. The pieces and their order are the same either way: one body of code for both.
 */
export type Steps<T> = Generator<void, T, void>;

/** Runs every step at once and returns the result. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}

/** The share of each loop turn the work queued on a StepRunner may take, at most (plus one step). */
export const STEP_TURN_SHARE_MS = 4;

interface Job {
  readonly steps: Steps<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** How a job is run (StepRunner.run). */
export interface RunOptions {
  /**
   * Some 100 µs of work at most (a small body, a short answer): run at once, in the caller's
   * turn, when nothing is queued and this turn's share is not used up yet. A batch of 2 views
   * took 3 loop turns from its body's end to its answer (a turn to its parse, one to its answer);
   * as one piece it takes 1 again, like on main.
   */
  readonly small?: boolean;
  /**
   * Work that finishes what is done already (the answer of committed views, whose body budget
   * is still charged): runs ahead of the queued jobs that start new work (the parses).
   */
  readonly finishing?: boolean;
}

/**
 * Runs step generators of many callers (the bodies of concurrent large requests) on later loop
 * turns, first come first served, at most `turnShareMs` of them per turn all together: 64 maximal
 * batches whose bodies end in one I/O phase were 64 parses and validations back to back (a
 * second without a turn of the loop); now each turn does a few ms of them, then requests,
 * frames and timers run. Finishing jobs (answers) go before the others; a small job on an idle
 * runner runs at once, within the same share. One runner per process (node.ts shares one between
 * its apps): two would each take their share of the same turn. Its queues hold one job per
 * request being parsed or answered, so they are bounded by what bounds those (the body budget,
 * body-budget.ts, and the connection caps).
 */
export class StepRunner {
  /** Jobs that finish done work (answers), run first. */
  private readonly finishing: Job[] = [];
  private readonly jobs: Job[] = [];
  private scheduled = false;
  /** Of this loop turn's share, what the small jobs run at once used (reset on the next turn). */
  private usedAtOnceMs = 0;
  private resetScheduled = false;

  constructor(
    private readonly turnShareMs = STEP_TURN_SHARE_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** The result of `steps`, run in slices on later turns (or at once: RunOptions.small); a step that throws rejects with that error. */
  run<T>(steps: Steps<T>, options: RunOptions = {}): Promise<T> {
    if (options.small === true && this.pending === 0 && this.usedAtOnceMs < this.turnShareMs) return this.runAtOnce(steps);
    return new Promise<T>((resolve, reject) => {
      (options.finishing === true ? this.finishing : this.jobs).push({ steps, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.finishing.length + this.jobs.length;
  }

  private runAtOnce<T>(steps: Steps<T>): Promise<T> {
    const started = this.clock();
    try {
      return Promise.resolve(runSteps(steps));
    } catch (error) {
      return Promise.reject(error as Error);
    } finally {
      this.usedAtOnceMs += this.clock() - started;
      if (!this.resetScheduled) {
        this.resetScheduled = true;
        setImmediate(this.resetAtOnce);
      }
    }
  }

  private readonly resetAtOnce = (): void => {
    this.resetScheduled = false;
    this.usedAtOnceMs = 0;
  };

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.slice);
  }

  private readonly slice = (): void => {
    this.scheduled = false;
    const started = this.clock();
    for (;;) {
      const queue = this.finishing.length > 0 ? this.finishing : this.jobs;
      const job = queue[0];
      if (job === undefined) break;
      let next: IteratorResult<void, unknown> | undefined;
      try {
        next = job.steps.next();
      } catch (error) {
        queue.shift();
        job.reject(error);
      }
      if (next?.done === true) {
        queue.shift();
        job.resolve(next.value);
      }
      // The clock after every step, one that threw too (a bad body's JSON.parse fails after
      // reading it all, so eight of them back to back held the loop for 8 parses): a step of a
      // job for this runner is some 10–100 µs of work (or one JSON.parse).
      if (this.clock() - started >= this.turnShareMs) break;
    }
    if (this.pending > 0) this.schedule();
  };
}
