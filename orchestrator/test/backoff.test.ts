import assert from 'node:assert/strict';
import { backoffDelay, sleep } from '../src/backends/triton/backoff.js';
import { ManualClock } from '../src/scheduling/clock.js';

describe('backoff', () => {
  const settings = { baseMs: 50, maxMs: 1000 };

  it('doubles the ceiling per attempt up to the maximum, and waits between half of it and all of it', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, settings, () => 0.9999999)).map(Math.round),
      [50, 100, 200, 400, 800, 1000, 1000],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, settings, () => 0)),
      [25, 50, 100, 200, 400, 500],
    );
    assert.equal(backoffDelay(1000, settings, () => 0.5), 750, 'huge attempt numbers stay bounded');
    const d = backoffDelay(2, settings);
    assert.ok(d >= 100 && d <= 200, String(d));
  });

  it('sleeps on the given clock', async () => {
    const clock = new ManualClock();
    let done = false;
    const p = sleep(clock, 100).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    assert.ok(!done);
    clock.advance(1);
    await p;
    assert.ok(done);
  });
});
