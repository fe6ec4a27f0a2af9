import assert from 'node:assert/strict';
import { admin, features, onnxOracle, startStack } from './support/stack.js';
import { classifierRow, jsonl, results, submitFile, waitForJob, type JobViewBody } from './support/jobs.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Batch jobs through the admin API on a real stack: submit, progress, results, bad input, cancel, dashboard. */
describe('batch jobs (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.models.startup = ['classifier'];
      c.jobs.lock_ms = 2000;
      c.jobs.backoff_ms = 100;
    });
  });
  after(async () => {
    await stack?.close();
  });

  it('runs inline rows in chunks and returns one line per row, in order, equal to ONNX Runtime', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => classifierRow(i + 1));
    const submitted = await admin<JobViewBody>(stack.url, 'POST', '/jobs', { model: 'classifier', version: '1', rows, chunk_size: 16 });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.progress.total, 50);
    assert.equal(submitted.body.chunks, 4);
    const done = await waitForJob(stack.url, submitted.body.id);
    assert.equal(done.state, 'completed');
    assert.deepEqual(done.progress, { done: 50, failed: 0, total: 50 });
    const out = await results(stack.url, done.id);
    assert.equal(out.status, 200);
    assert.match(out.type ?? '', /application\/x-ndjson/);
    assert.deepEqual(out.lines.map((l) => l.row), rows.map((_, i) => i));
    const x = Buffer.concat(rows.map((_, i) => Buffer.from(features(16, i + 1).buffer)));
    const oracle = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [50, 16], data: x } });
    const probs = new Float32Array(oracle['probabilities']!.data.buffer.slice(oracle['probabilities']!.data.byteOffset, oracle['probabilities']!.data.byteOffset + oracle['probabilities']!.data.length));
    out.lines.forEach((l, i) => {
      assert.equal(l.model_version, '1');
      const p = l.outputs!.find((o) => o.name === 'probabilities')!;
      assert.deepEqual(p.shape, [1, 3]);
      p.data.forEach((v, j) => assert.ok(Math.abs(v - probs[i * 3 + j]!) < 1e-6, `row ${i} output ${j}`));
    });
  });

  it('takes a JSON Lines upload; rows that do not match the model get their own error line', async () => {
    const text = jsonl([
      classifierRow(1),
      { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] },
      classifierRow(2),
      { inputs: [{ name: 'nope', datatype: 'FP32', shape: [1, 16], data: Array(16).fill(0) }] },
      [1, 2, 3],
      classifierRow(3),
    ]);
    const submitted = await submitFile(stack.url, { model: 'classifier', chunk_size: '2' }, text);
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const done = await waitForJob(stack.url, submitted.body['id'] as string);
    assert.equal(done.state, 'completed');
    assert.deepEqual(done.progress, { done: 3, failed: 3, total: 6 });
    const { lines } = await results(stack.url, done.id);
    assert.deepEqual(lines.map((l) => l.row), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(lines.map((l) => (l.error === undefined ? 'ok' : l.code)), ['ok', 'INVALID_ARGUMENT', 'ok', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'ok']);
    assert.match(lines[1]!.error!, /shape \[1,3\] does not match the model's \[-1,16\]/);
    assert.match(lines[3]!.error!, /unexpected input 'nope'/);
    assert.match(lines[4]!.error!, /must be a JSON object/);
  });
});
