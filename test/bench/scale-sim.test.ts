import { describe, expect, it } from 'vitest';
import { DEFAULT_SCALE_OPTIONS, runScaleSimulation, type ScaleOptions } from '../../bench/scale-sim.js';

const small: ScaleOptions = { ...DEFAULT_SCALE_OPTIONS, nodes: 4, restMs: 16_000, increments: 5, joinPagesPerNode: 3 };

describe('the scale simulation', () => {
  it('replays exactly from its seed: every figure but the wall time is equal', async () => {
    const { wallMs: _a, ...first } = await runScaleSimulation(small);
    const { wallMs: _b, ...second } = await runScaleSimulation(small);
    expect(second).toEqual(first);
    const { wallMs: _c, ...other } = await runScaleSimulation({ ...small, seed: small.seed + 1 });
    expect(other).not.toEqual(first);
  });

  it('forms the mesh, delivers every increment everywhere and catches a joiner up', async () => {
    const point = await runScaleSimulation(small);
    expect(point.meshFormedMs).toBeDefined();
    expect(point.increment.missing).toBe(0);
    expect(point.increment.everyNodeMs.count).toBe(small.increments);
    expect(point.join.catchUpMs).toBeDefined();
    expect(point.join.stateSlots).toBe(small.nodes * small.joinPagesPerNode + small.increments);
    expect(point.degree.max).toBe(small.nodes);
  });
});
