import { describe, expect, it } from 'vitest';
import { pacer } from '../../../src/runtime/pacer.js';

/** Busy-waits ms (synchronous work). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('pacer - long synchronous work gives the event loop a turn', () => {
  it('does not yield within the slice', () => {
    const pace = pacer(1000);
    expect(pace()).toBeUndefined();
  });

  it('yields once the slice has passed: callbacks waiting on the loop run in between', async () => {
    const pace = pacer(2);
    let ran = false;
    setImmediate(() => (ran = true));
    spin(5);
    expect(ran).toBe(false);
    const turn = pace();
    expect(turn).toBeInstanceOf(Promise);
    await turn;
    expect(ran).toBe(true);
    // A new slice starts after the turn.
    expect(pace()).toBeUndefined();
  });
});
