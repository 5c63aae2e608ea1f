import { describe, expect, it } from 'vitest';
import { runSteps, StepRunner, type Steps } from '../src/steps.js';

/** A job of `count` steps, each advancing the fake clock by 1 ms and logging `name`. */
function* job(name: string, count: number, clock: { t: number }, log: string[]): Steps<string> {
  for (let i = 0; i < count; i++) {
    clock.t += 1;
    log.push(name);
    yield;
  }
  return `${name} done`;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('steps', () => {
  it('runSteps drains a generator in one piece and returns its result', () => {
    const clock = { t: 0 };
    const log: string[] = [];
    expect(runSteps(job('a', 5, clock, log))).toBe('a done');
    expect(log).toHaveLength(5);
  });

  it('a StepRunner runs jobs first come first served, at most its share of each loop turn, and other work runs between its slices', async () => {
    const clock = { t: 0 };
    const runner = new StepRunner(4, () => clock.t);
    const log: string[] = [];
    const a = runner.run(job('a', 10, clock, log));
    const b = runner.run(job('b', 3, clock, log));
    expect(runner.pending).toBe(2);
    // Nothing runs before the next turn.
    expect(log).toEqual([]);
    let otherTurns = 0;
    let running = true;
    const other = (async () => {
      while (running) {
        log.push('|');
        otherTurns++;
        await turn();
      }
    })();
    expect(await a).toBe('a done');
    expect(await b).toBe('b done');
    running = false;
    await other;
    expect(runner.pending).toBe(0);
    const steps = log.filter((entry) => entry !== '|');
    expect(steps.join('')).toBe('aaaaaaaaaabbb');
    // Between two other turns at most 4 steps of 1 ms (the share): 13 steps need 4 slices or more.
    const slices = log
      .join('')
      .split('|')
      .filter((slice) => slice !== '');
    expect(slices.length).toBeGreaterThanOrEqual(4);
    for (const slice of slices) expect(slice.length).toBeLessThanOrEqual(4);
    expect(otherTurns).toBeGreaterThanOrEqual(4);
  });

  it('a step that throws rejects its job with that error, and the jobs behind it still run', async () => {
    const runner = new StepRunner();
    function* failing(): Steps<number> {
      yield;
      throw new Error('bad entry');
    }
    const clock = { t: 0 };
    const failed = runner.run(failing());
    const after = runner.run(job('c', 2, clock, []));
    await expect(failed).rejects.toThrow('bad entry');
    expect(await after).toBe('c done');
  });

  it('jobs whose step throws still stop at the share of each turn (eight failing bodies were one slice)', async () => {
    const clock = { t: 0 };
    const runner = new StepRunner(4, () => clock.t);
    const log: string[] = [];
    function* failing(name: string): Steps<number> {
      // One JSON.parse of a bad body: 5 ms, then the error.
      clock.t += 5;
      log.push(name);
      if (clock.t > 0) throw new Error(`bad body ${name}`);
      yield;
      return 0;
    }
    const jobs = [...'abcdefgh'].map((name) => runner.run(failing(name)));
    let running = true;
    const other = (async () => {
      while (running) {
        log.push('|');
        await turn();
      }
    })();
    const outcomes = await Promise.allSettled(jobs);
    running = false;
    await other;
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'fulfilled'))).toEqual([...'abcdefgh'].map((name) => `bad body ${name}`));
    expect(runner.pending).toBe(0);
    // Each 5 ms step is past the 4 ms share: one failing job per slice, other turns between them.
    const slices = log
      .join('')
      .split('|')
      .filter((slice) => slice !== '');
    expect(slices).toEqual([...'abcdefgh']);
  });

  it('a small job on an idle runner runs at once, in the caller\'s turn, within the share of that turn; otherwise it waits its turn', async () => {
    const clock = { t: 0 };
    const runner = new StepRunner(4, () => clock.t);
    const log: string[] = [];
    // 2 ms each: two fit the 4 ms share of this turn, the third waits for a later turn.
    const first = runner.run(job('a', 2, clock, log), { small: true });
    const second = runner.run(job('b', 2, clock, log), { small: true });
    expect(log.join('')).toBe('aabb');
    expect(runner.pending).toBe(0);
    const third = runner.run(job('c', 2, clock, log), { small: true });
    expect(runner.pending).toBe(1);
    expect(await Promise.all([first, second])).toEqual(['a done', 'b done']);
    expect(log.join('')).toBe('aabb');
    expect(await third).toBe('c done');
    await turn();
    // A new turn, an idle runner: at once again. Behind a queued job: in its turn, after it.
    const fourth = runner.run(job('d', 1, clock, log), { small: true });
    expect(log.join('')).toBe('aabbccd');
    const big = runner.run(job('e', 3, clock, log));
    const small = runner.run(job('f', 1, clock, log), { small: true });
    expect(log.join('')).toBe('aabbccd');
    expect(await Promise.all([fourth, big, small])).toEqual(['d done', 'e done', 'f done']);
    expect(log.join('')).toBe('aabbccdeeef');
  });

  it('a small job that throws at once rejects its promise', async () => {
    const runner = new StepRunner();
    function* failing(): Steps<number> {
      if (runner.pending === 0) throw new Error('bad entry');
      yield;
      return 0;
    }
    await expect(runner.run(failing(), { small: true })).rejects.toThrow('bad entry');
  });

  it('finishing jobs (answers of committed work) run ahead of the queued jobs that start new work', async () => {
    const clock = { t: 0 };
    const runner = new StepRunner(4, () => clock.t);
    const log: string[] = [];
    const parses = [runner.run(job('a', 6, clock, log)), runner.run(job('b', 2, clock, log))];
    const answer = runner.run(job('x', 2, clock, log), { finishing: true });
    await Promise.all([...parses, answer]);
    expect(log.join('')).toBe('xxaaaaaabb');
    // Arriving while a parse is half done, it goes next.
    log.length = 0;
    const parse = runner.run(job('c', 8, clock, log));
    while (log.length < 4) await turn();
    const late = runner.run(job('y', 1, clock, log), { finishing: true });
    await Promise.all([parse, late]);
    expect(log.join('')).toBe('ccccycccc');
  });
});
