import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { ResourceExhaustedError, UnavailableError, InferneoError, ErrorCode } from '../orchestrator/src/errors.js';
import { ChunkRunner, TransientChunkError } from '../orchestrator/src/jobs/chunk-runner.js';
import { JobStore } from '../orchestrator/src/jobs/job-store.js';
import { encodeRows, type JobRow } from '../orchestrator/src/jobs/row-codec.js';
import type { Tensor } from '../orchestrator/src/protocol/tensor.js';
import type { ModelConfig } from '../orchestrator/src/registry/model-config.js';
import type { ModelRegistry } from '../orchestrator/src/registry/model-registry.js';
import type { Router } from '../orchestrator/src/routing/router.js';
import type { Scheduler } from '../orchestrator/src/scheduling/scheduler.js';
import { redisUrl } from './support/stack.js';

const config = {
  name: 'm',
  platform: 'onnxruntime_onnx',
  backend: '',
  max_batch_size: 8,
  input: [{ name: 'x', datatype: 'FP32', dims: [2], optional: false }],
  output: [{ name: 'y', datatype: 'FP32', dims: [2] }],
  instance_group: [],
  json: {},
} as unknown as ModelConfig;

/** A row of model m: x = [row, row]. */
function row(r: number): JobRow {
  return { row: r, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: Buffer.from(new Float32Array([r, r]).buffer) }], outputs: [] };
}

/**
 * ChunkRunner and JobStore against a real Redis, with the model side faked: which rows run again
 * after a failure, which failures are retried, and that every row ends with exactly one line.
 */
describe('chunk runner and job store (Redis)', () => {
  let redis: Redis;
  let store: JobStore;
  const prefix = `inferneo-test-${randomUUID().slice(0, 8)}:`;
  /** How the fake scheduler answers a row (by the row's first value): outputs, or an error to throw. */
  let answer: (r: number) => Error | undefined;
  let calls: number[];
  let leases: number;
  let background: boolean[];

  const registry = {
    model: () => ({ config }),
    acquire: async () => {
      leases++;
      return { model: 'm', version: '1', release: () => leases-- };
    },
  } as unknown as ModelRegistry;
  const router = { resolve: () => ({ model: 'm', version: '1' }) } as unknown as Router;
  const scheduler = {
    infer: async (_m: string, _v: string, _c: ModelConfig, request: { inputs: Tensor[] }, options: { background?: boolean }) => {
      const r = request.inputs[0]!.data.readFloatLE(0);
      calls.push(r);
      background.push(options.background === true);
      await new Promise((resolve) => setImmediate(resolve));
      const err = answer(r);
      if (err !== undefined) throw err;
      return [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: Buffer.from(new Float32Array([r * 2, r * 2]).buffer) }];
    },
  } as unknown as Scheduler;

  const newJob = async (rows: number, chunkSize: number): Promise<string> => {
    const id = randomUUID();
    await store.create({ id, model: 'm', chunk_size: chunkSize, priority: 5, created_at: new Date().toISOString() }, 600);
    for (let c = 0; c * chunkSize < rows; c++) {
      await store.setInput(id, c, encodeRows(Array.from({ length: Math.min(chunkSize, rows - c * chunkSize) }, (_, i) => row(c * chunkSize + i))), 600);
    }
    await store.activate(id, rows, Math.ceil(rows / chunkSize), Date.now());
    return id;
  };
  const runner = (flushRows = 4): ChunkRunner => new ChunkRunner({ store, registry, router, scheduler, rowsInFlight: 3, flushRows });

  before(() => {
    redis = new Redis(redisUrl());
    store = new JobStore(redis, { prefix });
  });
  beforeEach(() => {
    answer = () => undefined;
    calls = [];
    leases = 0;
    background = [];
  });
  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('runs every row as background work, records one line each and drops the input', async () => {
    const id = await newJob(10, 10);
    const outcome = await runner().run({ job: id, chunk: 0 }, false);
    assert.deepEqual(outcome, { rows: 10, done: 10, failed: 0 });
    assert.deepEqual([...calls].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(background.every(Boolean));
    assert.equal(leases, 0, 'every lease released');
    const lines = (await store.results(id, 0, 10)).map((l) => JSON.parse(l) as { row: number; outputs: { data: number[] }[] });
    assert.deepEqual(lines.map((l) => [l.row, l.outputs[0]!.data[0]]), Array.from({ length: 10 }, (_, i) => [i, i * 2]));
    assert.equal(await store.input(id, 0), null);
    const meta = (await store.meta(id))!;
    assert.deepEqual([meta.done, meta.failed, meta.started_at !== undefined], [10, 0, true]);
    // Run again (a retry of a run whose completion was lost): nothing runs, nothing is counted twice.
    calls = [];
    assert.deepEqual(await runner().run({ job: id, chunk: 0 }, false), { rows: 0, done: 0, failed: 0 });
    assert.deepEqual(calls, []);
    assert.equal((await store.meta(id))!.done, 10);
  });

  it('leaves rows that failed for a passing reason to a retry, which runs only those', async () => {
    const id = await newJob(8, 8);
    answer = (r) => (r === 2 ? new UnavailableError('the worker went away') : r === 5 ? new ResourceExhaustedError('queue full') : r === 6 ? new InferneoError(ErrorCode.INTERNAL, 'model raised') : undefined);
    await assert.rejects(runner().run({ job: id, chunk: 0 }, false), (err: Error) => {
      assert.ok(err instanceof TransientChunkError);
      assert.equal(err.rows, 2);
      return true;
    });
    let meta = (await store.meta(id))!;
    assert.deepEqual([meta.done, meta.failed], [5, 1], 'the model error is the row\'s own line; transient ones have none');
    assert.ok((await store.input(id, 0)) !== null, 'the input stays for the retry');
    calls = [];
    answer = () => undefined;
    assert.deepEqual(await runner().run({ job: id, chunk: 0 }, false), { rows: 2, done: 2, failed: 0 });
    assert.deepEqual(calls.sort(), [2, 5]);
    meta = (await store.meta(id))!;
    assert.deepEqual([meta.done, meta.failed], [7, 1]);
    const line6 = JSON.parse((await store.results(id, 6, 7))[0]!) as { error: string; code: string };
    assert.deepEqual(line6, { row: 6, error: 'model raised', code: 'INTERNAL' });
  });

  it('on the last attempt, gives transient failures error lines so that every row has one', async () => {
    const id = await newJob(3, 3);
    answer = (r) => (r === 1 ? new Error('ECONNRESET (not an Inferneo error)') : undefined);
    assert.deepEqual(await runner().run({ job: id, chunk: 0 }, true), { rows: 3, done: 2, failed: 1 });
    const line = JSON.parse((await store.results(id, 1, 2))[0]!) as { code: string; error: string };
    assert.equal(line.code, 'INTERNAL');
    assert.match(line.error, /ECONNRESET/);
  });

  it('skips chunks of cancelled, finished or vanished jobs', async () => {
    const cancelled = await newJob(2, 2);
    assert.deepEqual(await store.requestCancel(cancelled), { outcome: 'ok' });
    assert.equal((await runner().run({ job: cancelled, chunk: 0 }, false)).skipped, 'cancelled');
    const finished = await newJob(2, 2);
    assert.equal(await store.finalize(finished, 'completed', 60), true);
    assert.equal(await store.finalize(finished, 'failed', 60), false, 'finalized once');
    assert.equal((await runner().run({ job: finished, chunk: 0 }, false)).skipped, 'finished');
    assert.deepEqual(await store.requestCancel(finished), { outcome: 'final', state: 'completed' });
    assert.equal((await runner().run({ job: randomUUID(), chunk: 0 }, false)).skipped, 'gone');
    assert.deepEqual(await store.requestCancel(randomUUID()), { outcome: 'gone' });
    assert.deepEqual(calls, []);
    assert.ok((await redis.ttl(store.metaKey(finished))) > 0, 'a finished job expires');
    assert.equal(await redis.exists(store.inputKey(finished, 0)), 0, 'its inputs are gone');
  });

  it('fails a chunk whose input is missing while rows lack results; a job that vanished mid-run records nothing', async () => {
    const id = await newJob(4, 2);
    await redis.del(store.inputKey(id, 1));
    await assert.rejects(runner().run({ job: id, chunk: 1 }, false), /the input of chunk 1 of job .* is missing from Redis; 2 row\(s\) cannot run/);
    const gone = await newJob(2, 2);
    answer = () => {
      void redis.del(store.metaKey(gone));
      return undefined;
    };
    const outcome = await runner(1).run({ job: gone, chunk: 0 }, false);
    assert.deepEqual([outcome.done, outcome.failed], [0, 0]);
    assert.equal(await redis.exists(store.metaKey(gone)), 0, 'no record is created again');
  });

  it('claims the callback once, and lists newest first, dropping expired jobs', async () => {
    const id = await newJob(1, 1);
    assert.equal(await store.claimCallback(id), true);
    assert.equal(await store.claimCallback(id), false);
    await store.setCallbackOutcome(id, 'HTTP 200');
    assert.equal((await store.meta(id))!.callback, 'HTTP 200');
    const newer = await newJob(1, 1);
    const listed = await store.list(100);
    assert.equal(listed[0]!.id, newer);
    await redis.del(store.metaKey(newer));
    await store.setCallbackOutcome(newer, 'HTTP 200');
    assert.equal(await redis.exists(store.metaKey(newer)), 0);
    assert.ok(!(await store.list(100)).some((m) => m.id === newer));
    assert.equal(await redis.zscore(`${prefix}jobs`, newer), null, 'pruned from the index');
    assert.deepEqual(await store.record(newer, [{ row: 0, ok: true, line: '{}' }]), { gone: true });
    assert.deepEqual(await store.record(id, []), { gone: false, done: 0, failed: 0 });
    await assert.rejects(store.finalize(id, 'running', 1), /not a final state/);
  });
});
