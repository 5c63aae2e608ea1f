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

/**
 * Runs step generators of many callers (the bodies of concurrent large requests) on later loop
 * turns, first come first served, at most `turnShareMs` of them per turn all together: 64 maximal
 * batches whose bodies end in one I/O phase were 64 parses and validations back to back (a
 * second without a turn of the loop); now each turn does a few ms of them, then requests,
 * frames and timers run. One runner per process (node.ts shares one between its apps): two would
 * each take their share of the same turn. Its queue holds one job per request being parsed, so
 * it is bounded by what bounds those (the body budget, body-budget.ts, and the connection caps).
 */
export class StepRunner {
  private readonly jobs: Job[] = [];
  private scheduled = false;

  constructor(
    private readonly turnShareMs = STEP_TURN_SHARE_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** The result of `steps`, run in slices on later turns; a step that throws rejects with that error. */
  run<T>(steps: Steps<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.jobs.push({ steps, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.jobs.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.slice);
  }

  private readonly slice = (): void => {
    this.scheduled = false;
    const started = this.clock();
    while (this.jobs.length > 0) {
      const job = this.jobs[0] as Job;
      let next: IteratorResult<void, unknown> | undefined;
      try {
        next = job.steps.next();
      } catch (error) {
        this.jobs.shift();
        job.reject(error);
      }
      if (next?.done === true) {
        this.jobs.shift();
        job.resolve(next.value);
      }
      // The clock after every step, one that threw too (a bad body's JSON.parse fails after
      // reading it all, so eight of them back to back held the loop for 8 parses): a step of a
      // job for this runner is some 10–100 µs of work (or one JSON.parse).
      if (this.clock() - started >= this.turnShareMs) break;
    }
    if (this.jobs.length > 0) this.schedule();
  };
}
