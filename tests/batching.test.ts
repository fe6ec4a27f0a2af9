import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { features, MODEL_REPOSITORY, onnxOracle, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface Stats {
  model_stats: { name: string; version: string; inference_count: number; execution_count: number; inference_stats: { queue: { count: number } }; batch_stats: { batch_size: number }[] }[];
}

/**
 * Dynamic batching with real workers: concurrent single requests become batches and each caller
 * gets exactly its own rows; full queues, queue timeouts and clients that leave behave as Triton's.
 */
describe('dynamic batching (real workers)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let repo: string;

  /** A copy of the classifier under another name, with its own scheduling settings. */
  const variant = (name: string, scheduling: string): void => {
    const dir = path.join(repo, name);
    mkdirSync(dir, { recursive: true });
    cpSync(path.join(MODEL_REPOSITORY, 'classifier', '1'), path.join(dir, '1'), { recursive: true });
    const config = readFileSync(path.join(MODEL_REPOSITORY, 'classifier', 'config.pbtxt'), 'utf8')
      .replace(/^name:\s*"classifier"/m, `name: "${name}"`)
      .replace(/version_policy[^\n]*\n/, '')
      .replace(/instance_group \[[\s\S]*?\n\]\n/, '')
      .replace(/dynamic_batching \{[\s\S]*?\n\}\n/, '');
    writeFileSync(path.join(dir, 'config.pbtxt'), `${config}\n${scheduling}\n`);
  };

  before(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'inferneo-batching-'));
    variant('batched', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { max_queue_delay_microseconds: 20000 preferred_batch_size: [ 16 ] }');
    variant('bounded', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { default_queue_policy { max_queue_size: 2 } }');
    variant('impatient', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { max_queue_delay_microseconds: 50000 preferred_batch_size: [ 64 ] default_queue_policy { default_timeout_microseconds: 5000 timeout_action: REJECT } }');
    variant('patient', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { max_queue_delay_microseconds: 1500000 preferred_batch_size: [ 64 ] priority_levels: 2 default_priority_level: 2 }');
    stack = await startStack((c) => {
      c.workers.spawn = 2;
      c.model_repository = repo;
    });
  });
  after(async () => {
    await stack?.close();
    rmSync(repo, { recursive: true, force: true });
  });

  const infer = (model: string, data: number[], extra: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Response> =>
    fetch(`${stack.url}/v2/models/${model}/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data }], ...extra }),
      ...(signal !== undefined ? { signal } : {}),
    });
  const stats = async (model: string): Promise<Stats['model_stats'][number]> =>
    ((await (await fetch(`${stack.url}/v2/models/${model}/stats`)).json()) as Stats).model_stats[0]!;

  it('turns 64 concurrent single requests into batches; every caller gets its own rows', async () => {
    const inputs = Array.from({ length: 64 }, (_, i) => Array.from(features(16, 1000 + i)));
    const answers = await Promise.all(
      inputs.map(async (x) => {
        const res = await infer('batched', x);
        assert.equal(res.status, 200);
        return (await res.json()) as { outputs: { name: string; data: number[] }[] };
      }),
    );
    const all = new Float32Array(inputs.flat());
    const oracle = onnxOracle('classifier', '1', { features: { dtype: '<f4', shape: [64, 16], data: Buffer.from(all.buffer) } });
    const probs = new Float32Array(new Uint8Array(oracle['probabilities']!.data).buffer);
    const labels = new BigInt64Array(new Uint8Array(oracle['label']!.data).buffer);
    answers.forEach((a, i) => {
      const p = a.outputs.find((o) => o.name === 'probabilities')!.data;
      p.forEach((v, j) => assert.ok(Math.abs(v - probs[i * 3 + j]!) <= 1e-6, `row ${i}: ${v} vs ${probs[i * 3 + j]}`));
      assert.equal(a.outputs.find((o) => o.name === 'label')!.data[0], Number(labels[i]));
    });
    const s = await stats('batched');
    assert.equal(s.inference_count, 64);
    assert.ok(s.execution_count < 16, `64 rows in ${s.execution_count} executions`);
    assert.ok(s.batch_stats.some((b) => b.batch_size >= 8), JSON.stringify(s.batch_stats));
    assert.equal(s.inference_stats.queue.count, 64);
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.match(metrics, /nv_inference_count\{model="batched",version="1"\} 64/);
    assert.match(metrics, /nv_inference_request_success\{model="batched",version="1"\} 64/);
    assert.match(metrics, /nv_inference_exec_count\{model="batched",version="1"\} \d+/);
    assert.match(metrics, /inferneo_batch_size_bucket\{le="16",model="batched",version="1"\}/);
    assert.match(metrics, /nv_inference_queue_duration_us\{model="batched",version="1"\} [1-9]/);
  });

  it('answers 429 with Retry-After when the queue is full, and serves the rest', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => infer('bounded', Array.from(features(16, i)))));
    const refused = results.filter((r) => r.status === 429);
    assert.ok(refused.length > 0, 'some requests found the queue full');
    assert.equal(refused[0]!.headers.get('retry-after'), '1');
    assert.match(((await refused[0]!.json()) as { error: string }).error, /the queue of model 'bounded' is full \(2 requests at priority 1\)/);
    assert.deepEqual([...new Set(results.map((r) => r.status))].sort(), [200, 429]);
    assert.match(await (await fetch(`${stack.url}/metrics`)).text(), /nv_inference_request_failure\{model="bounded",version="1",reason="REJECTED"\} [1-9]/);
  });

  it('answers 503 naming the queue timeout when a request waits too long', async () => {
    const res = await infer('impatient', Array.from(features(16, 1)));
    assert.equal(res.status, 503);
    assert.match(((await res.json()) as { error: string }).error, /request timed out after waiting \d+ µs in the queue of model 'impatient'/);
    // A request may shorten the timeout only when the policy allows it; here it does not, so a
    // malformed value is the only thing checked.
    assert.equal((await infer('impatient', Array.from(features(16, 1)), { parameters: { timeout: -1 } })).status, 400);
  });

  it('removes a request whose client left before it was dispatched; it is never computed', async () => {
    const controller = new AbortController();
    const gone = infer('patient', Array.from(features(16, 2)), {}, controller.signal).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    assert.ok((await gone) instanceof Error);
    await new Promise((r) => setTimeout(r, 1600));
    const s = await stats('patient');
    assert.equal(s.execution_count, 0, 'nothing was executed');
    assert.equal(s.inference_count, 0);
    assert.match(await (await fetch(`${stack.url}/metrics`)).text(), /nv_inference_request_failure\{model="patient",version="1",reason="CANCELED"\} 1/);
  });

  it('takes the request priority parameter (ordering is unit-tested), and rejects a level the model lacks', async () => {
    const [low, high] = await Promise.all([infer('patient', Array.from(features(16, 3))), infer('patient', Array.from(features(16, 4)), { parameters: { priority: 1 } })]);
    assert.deepEqual([low.status, high.status], [200, 200]);
    const bad = await infer('patient', Array.from(features(16, 5)), { parameters: { priority: 3 } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /priority 3 is outside 1\.\.2/);
  });
});
