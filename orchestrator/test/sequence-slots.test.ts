import assert from 'node:assert/strict';
import { SequenceSlots } from '../src/llm/sequence-slots.js';
import { CancelSource } from '../src/scheduling/cancel-signal.js';

describe('sequence-slots', () => {
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('admits up to the capacity, then in arrival order as slots free up', async () => {
    let waiting = 0;
    const slots = new SequenceSlots(() => 2, 10, { onWaiting: (d) => (waiting += d) });
    const a = await slots.acquire();
    await slots.acquire();
    const order: string[] = [];
    const c = slots.acquire().then((release) => (order.push('c'), release));
    const d = slots.acquire().then((release) => (order.push('d'), release));
    await tick();
    assert.equal(slots.runningCount, 2);
    assert.equal(slots.waitingCount, 2);
    assert.equal(waiting, 2);
    a();
    a(); // idempotent
    const releaseC = await c;
    assert.deepEqual(order, ['c']);
    releaseC();
    await d;
    assert.deepEqual(order, ['c', 'd']);
    assert.equal(waiting, 0);
    assert.equal(slots.runningCount, 2);
  });

  it('lets a waiter leave when its caller goes away, and refuses past maxWaiting', async () => {
    const slots = new SequenceSlots(() => 0, 1); // less than 1 counts as 1
    const held = await slots.acquire();
    const signal = new CancelSource();
    const waiter = slots.acquire(signal);
    await assert.rejects(slots.acquire(), { code: 'RESOURCE_EXHAUSTED' });
    signal.cancel();
    await assert.rejects(waiter, { code: 'CANCELLED' });
    assert.equal(slots.waitingCount, 0);
    await assert.rejects(slots.acquire(signal), { code: 'CANCELLED' });
    held();
    assert.equal(slots.runningCount, 0);
  });

  it('admits waiters at once when the capacity grows', async () => {
    let capacity = 1;
    const slots = new SequenceSlots(() => capacity, 10);
    await slots.acquire();
    const second = slots.acquire();
    capacity = 2;
    const signal = new CancelSource();
    const third = slots.acquire(signal); // lets `second` in first, then waits itself
    await second;
    assert.equal(slots.runningCount, 2);
    assert.equal(slots.waitingCount, 1);
    signal.cancel();
    await assert.rejects(third, { code: 'CANCELLED' });
  });
});
