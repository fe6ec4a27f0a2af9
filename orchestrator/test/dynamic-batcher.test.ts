import assert from 'node:assert/strict';
import { fromAbortSignal } from '../src/scheduling/cancel-signal.js';
import { ManualClock } from '../src/scheduling/clock.js';
import { type BatcherOptions, DynamicBatcher } from '../src/scheduling/dynamic-batcher.js';

/** A batch executor the test completes by hand, recording every batch it was given. */
class Executor {
  readonly batches: string[][] = [];
  private readonly pending: { resolve: (r: (string | Error)[]) => void; reject: (e: Error) => void; batch: string[] }[] = [];
  readonly run = (requests: string[]): Promise<(string | Error)[]> => {
    this.batches.push(requests);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject, batch: requests }));
  };
  /** Completes the oldest running batch: each request answered with its name + '!' (or an Error). */
  async complete(map: (r: string) => string | Error = (r) => `${r}!`): Promise<void> {
    const p = this.pending.shift()!;
    p.resolve(p.batch.map(map));
    await flush();
  }
  async fail(error: Error): Promise<void> {
    this.pending.shift()!.reject(error);
    await flush();
  }
  get running(): number {
    return this.pending.length;
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(options: Partial<BatcherOptions> = {}): { clock: ManualClock; exec: Executor; batcher: DynamicBatcher<string, string> } {
  const clock = new ManualClock();
  const exec = new Executor();
  const batcher = new DynamicBatcher<string, string>({ maxBatchSize: 4, name: 'model m', ...options }, exec.run, clock);
  return { clock, exec, batcher };
}

/** Tracks a promise's outcome without awaiting it. */
function track<T>(p: Promise<T>): { value?: T; error?: Error & { code?: string }; settled: boolean } {
  const t: { value?: T; error?: Error & { code?: string }; settled: boolean } = { settled: false };
  p.then(
    (v) => Object.assign(t, { value: v, settled: true }),
    (e: Error) => Object.assign(t, { error: e, settled: true }),
  );
  return t;
}

const one = { rows: 1, shapeKey: 'x' };

describe('dynamic-batcher', () => {
  it('dispatches at once when a slot is free and no delay is set, and batches what queues meanwhile', async () => {
    const { exec, batcher } = setup();
    const a = track(batcher.submit('a', one));
    assert.deepEqual(exec.batches, [['a']]);
    const rest = ['b', 'c', 'd', 'e', 'f'].map((r) => track(batcher.submit(r, one)));
    assert.equal(batcher.pending, 5);
    await exec.complete();
    assert.equal(a.value, 'a!');
    assert.deepEqual(exec.batches[1], ['b', 'c', 'd', 'e'], 'the next batch takes up to max_batch_size rows');
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['f']);
    await exec.complete();
    assert.deepEqual(rest.map((t) => t.value), ['b!', 'c!', 'd!', 'e!', 'f!']);
  });

  it('counts rows, not requests, against max_batch_size', async () => {
    const { exec, batcher } = setup({ maxInflightBatches: 1 });
    track(batcher.submit('first', one));
    track(batcher.submit('two', { rows: 2, shapeKey: 'x' }));
    track(batcher.submit('three', { rows: 3, shapeKey: 'x' }));
    track(batcher.submit('one', one));
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['two', 'one'], 'three rows would not fit after two; one does');
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['three']);
    await assert.rejects(batcher.submit('big', { rows: 5, shapeKey: 'x' }), /batch size 5 exceeds max_batch_size 4/);
  });

  it('waits up to max_queue_delay for a batch to fill, with one timer and none when idle', async () => {
    const { clock, exec, batcher } = setup({ maxQueueDelayUs: 1000, maxInflightBatches: 2 });
    assert.equal(clock.pendingTimers, 0);
    const a = track(batcher.submit('a', one));
    clock.advance(0.4);
    track(batcher.submit('b', one));
    assert.equal(exec.batches.length, 0);
    assert.equal(clock.pendingTimers, 1);
    clock.advance(0.59);
    assert.equal(exec.batches.length, 0, 'not before the oldest request has waited 1 ms');
    clock.advance(0.01);
    assert.deepEqual(exec.batches, [['a', 'b']]);
    assert.equal(clock.pendingTimers, 0);
    // A full batch does not wait.
    for (const r of ['c', 'd', 'e', 'f']) track(batcher.submit(r, one));
    assert.deepEqual(exec.batches[1], ['c', 'd', 'e', 'f']);
    await exec.complete();
    assert.equal(a.value, 'a!');
  });

  it('sends the largest preferred batch size as soon as it forms, and trims to it when the delay expires', async () => {
    const { clock, exec, batcher } = setup({ maxBatchSize: 8, preferredBatchSizes: [2, 4], maxQueueDelayUs: 5000, maxInflightBatches: 4 });
    for (const r of ['a', 'b', 'c']) track(batcher.submit(r, one));
    assert.equal(exec.batches.length, 0);
    track(batcher.submit('d', one));
    assert.deepEqual(exec.batches, [['a', 'b', 'c', 'd']], 'preferred size 4 reached');
    for (const r of ['e', 'f', 'g']) track(batcher.submit(r, one));
    clock.advance(5);
    assert.deepEqual(exec.batches[1], ['e', 'f'], 'at the deadline, the largest preferred size that fits');
    assert.deepEqual(exec.batches[2], ['g']);
  });

  it('batches only requests whose shapes agree', async () => {
    const { exec, batcher } = setup({ maxInflightBatches: 1 });
    track(batcher.submit('first', one));
    track(batcher.submit('x1', { rows: 1, shapeKey: 'x' }));
    track(batcher.submit('y1', { rows: 1, shapeKey: 'y' }));
    track(batcher.submit('x2', { rows: 1, shapeKey: 'x' }));
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['x1', 'x2']);
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['y1']);
  });

  it('serves higher priorities first', async () => {
    const { exec, batcher } = setup({ maxBatchSize: 2, maxInflightBatches: 1, priorityLevels: 3, defaultPriorityLevel: 2 });
    track(batcher.submit('first', one));
    track(batcher.submit('low', { ...one, priority: 3 }));
    track(batcher.submit('normal', one));
    track(batcher.submit('high', { ...one, priority: 1 }));
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['high', 'normal']);
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['low']);
    await assert.rejects(batcher.submit('bad', { ...one, priority: 4 }), /priority 4 is outside 1\.\.3/);
  });

  it('serves background requests after every online one, filling the free rows of online batches', async () => {
    const { exec, batcher } = setup({ maxBatchSize: 3, maxInflightBatches: 1, priorityLevels: 2 });
    track(batcher.submit('first', one));
    const bg = ['b1', 'b2', 'b3', 'b4'].map((r) => track(batcher.submit(r, { ...one, background: true })));
    track(batcher.submit('low', { ...one, priority: 2 }));
    track(batcher.submit('high', { ...one, priority: 1 }));
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['high', 'low', 'b1'], 'online first, background rows fill the batch');
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['b2', 'b3', 'b4']);
    await exec.complete();
    assert.deepEqual(bg.map((t) => t.value), ['b1!', 'b2!', 'b3!', 'b4!']);
  });

  it('keeps one instance free of background batches for online requests', async () => {
    const { exec, batcher } = setup({ maxBatchSize: 1, maxInflightBatches: 2, defaultQueuePolicy: { maxQueueSize: 1 } });
    const bg = ['b1', 'b2', 'b3'].map((r) => track(batcher.submit(r, { ...one, background: true })));
    assert.deepEqual(exec.batches, [['b1']], 'only one of the two instances runs background work');
    assert.equal(batcher.pending, 2, 'background requests do not count against max_queue_size');
    track(batcher.submit('online', one));
    assert.deepEqual(exec.batches[1], ['online'], 'the free instance takes the online request at once');
    await exec.complete();
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['b2']);
    await exec.complete();
    await exec.complete();
    assert.deepEqual(bg.map((t) => t.value), ['b1!', 'b2!', 'b3!']);
  });

  it('rejects a request whose queue timeout passes (REJECT) with 503, at the deadline exactly', async () => {
    const { clock, exec, batcher } = setup({ maxInflightBatches: 1, defaultQueuePolicy: { defaultTimeoutUs: 2000 } });
    track(batcher.submit('busy', one));
    const waiting = track(batcher.submit('late', one));
    clock.advance(1.99);
    await flush();
    assert.equal(waiting.settled, false);
    clock.advance(0.01);
    await flush();
    assert.equal(waiting.error?.code, 'UNAVAILABLE');
    assert.match(waiting.error!.message, /timed out after waiting 2000 µs in the queue of model m/);
    await exec.complete();
    assert.equal(exec.batches.length, 1, 'the timed-out request never runs');
  });

  it('moves a timed-out request behind the others (DELAY), and honours shorter per-request timeouts when allowed', async () => {
    const { clock, exec, batcher } = setup({
      maxBatchSize: 1,
      maxInflightBatches: 1,
      defaultQueuePolicy: { timeoutAction: 'DELAY', defaultTimeoutUs: 10_000, allowTimeoutOverride: true },
    });
    track(batcher.submit('busy', one));
    const early = track(batcher.submit('early', { ...one, timeoutUs: 1000 }));
    track(batcher.submit('later', one));
    clock.advance(1);
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['later'], 'early timed out and was delayed behind later');
    await exec.complete();
    assert.deepEqual(exec.batches[2], ['early']);
    await exec.complete();
    assert.equal(early.value, 'early!', 'a delayed request is still served');
  });

  it('refuses requests beyond max_queue_size with RESOURCE_EXHAUSTED (429)', async () => {
    const { batcher } = setup({ maxInflightBatches: 1, defaultQueuePolicy: { maxQueueSize: 2 } });
    track(batcher.submit('running', one));
    track(batcher.submit('q1', one));
    track(batcher.submit('q2', one));
    await assert.rejects(batcher.submit('q3', one), (err: Error & { code: string }) => {
      assert.equal(err.code, 'RESOURCE_EXHAUSTED');
      assert.match(err.message, /the queue of model m is full \(2 requests at priority 1\)/);
      return true;
    });
  });

  it('drops a cancelled request from the queue without running it', async () => {
    const { exec, batcher } = setup({ maxInflightBatches: 1 });
    track(batcher.submit('running', one));
    const controller = new AbortController();
    const gone = track(batcher.submit('gone', { ...one, signal: fromAbortSignal(controller.signal) }));
    const stays = track(batcher.submit('stays', one));
    controller.abort();
    await flush();
    assert.equal(gone.error?.code, 'CANCELLED');
    assert.equal(batcher.pending, 1);
    await exec.complete();
    assert.deepEqual(exec.batches[1], ['stays']);
    await exec.complete();
    assert.equal(stays.value, 'stays!');
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(batcher.submit('x', { ...one, signal: fromAbortSignal(aborted.signal) }), { code: 'CANCELLED' });
  });

  it('settles every request: per-request errors stay with their request, a failed batch fails its requests', async () => {
    const { exec, batcher } = setup({ maxInflightBatches: 1 });
    const first = track(batcher.submit('first', one));
    const a = track(batcher.submit('a', one));
    const b = track(batcher.submit('b', one));
    await exec.complete((r) => (r === 'first' ? new Error('row failed') : `${r}!`));
    assert.equal(first.error?.message, 'row failed');
    await exec.fail(new Error('worker lost'));
    assert.equal(a.error?.message, 'worker lost');
    assert.equal(b.error?.message, 'worker lost');
    const c = track(batcher.submit('c', one));
    const p = exec.batches.length;
    await exec.complete(() => undefined as unknown as string);
    assert.equal(exec.batches.length, p);
    assert.match(c.error!.message, /returned 0 results for a batch of 1|returned 1 results/);
  });

  it('releases results in dispatch order with preserve_ordering', async () => {
    const { exec, batcher } = setup({ maxBatchSize: 1, maxInflightBatches: 2, preserveOrdering: true });
    const a = track(batcher.submit('a', one));
    const b = track(batcher.submit('b', one));
    // Finish b's batch first: its result waits for a's.
    const pending = (exec as unknown as { pending: { resolve: (r: string[]) => void; batch: string[] }[] }).pending;
    pending[1]!.resolve(['b!']);
    await flush();
    assert.equal(b.settled, false);
    pending[0]!.resolve(['a!']);
    await flush();
    await flush();
    assert.deepEqual([a.value, b.value], ['a!', 'b!']);
  });

  it('runs each request alone for models without a batch dimension', async () => {
    const { exec, batcher } = setup({ maxBatchSize: 0, maxInflightBatches: 1 });
    for (const r of ['a', 'b', 'c']) track(batcher.submit(r, { rows: 7, shapeKey: 'x' }));
    await exec.complete();
    await exec.complete();
    assert.deepEqual(exec.batches, [['a'], ['b'], ['c']]);
  });

  it('rejects what is queued on close, and everything after', async () => {
    const { exec, batcher } = setup({ maxInflightBatches: 1 });
    const running = track(batcher.submit('running', one));
    const queued = track(batcher.submit('queued', one));
    batcher.close();
    batcher.close();
    await flush();
    assert.match(queued.error!.message, /closing/);
    await exec.complete();
    assert.equal(running.value, 'running!');
    await assert.rejects(batcher.submit('x', one), /closed/);
  });
});
