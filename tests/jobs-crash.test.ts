import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { classifierRow, type JobViewBody, jsonl, results, submitFile, waitForJob, type ResultLine } from './support/jobs.js';
import { PersistentRedis } from './support/redis-server.js';
import { features, MODEL_REPOSITORY, onnxOracle, ROOT, startStack, VENV_PYTHON } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

const ROWS = 1200;

/**
 * Crash safety: the BullMQ workers run in a separate `inferneo jobs-worker` process (the stack in
 * this process only takes and reports jobs), against a private Redis with persistence on. Killing
 * that process (SIGKILL, with its Python worker) or Redis in the middle of a job, then starting it
 * again, must still end with exactly one result line — the model's outputs — for every row.
 */
describe('batch jobs survive crashes (jobs-worker process, Redis restart)', function () {
  this.timeout(240_000);
  const redis = new PersistentRedis();
  let stack: Stack;
  let tmp: string;
  let worker: { child: ChildProcess; output: () => string } | undefined;
  let expected: Float32Array;

  before(async () => {
    await redis.start();
    stack = await startStack((c) => {
      c.redis_url = redis.url;
      c.workers.spawn = 1;
      c.models.startup = ['classifier'];
      c.jobs.workers = false;
    });
    tmp = await mkdtemp(path.join(tmpdir(), 'inferneo-jobs-crash-'));
    // Slow enough (2 chunks of 100 rows a second, rows one at a time, results written 64 at a time)
    // that a kill can be aimed at the middle of a chunk, with some of its rows recorded.
    await writeFile(
      path.join(tmp, 'inferneo.yaml'),
      [
        'jobs:',
        '  lock_ms: 1500',
        '  concurrency: 1',
        '  rate_limit_chunks: 2',
        '  rate_limit_window_ms: 1000',
        '  rows_in_flight: 1',
        '  backoff_ms: 200',
        'workers:',
        '  spawn: 1',
        `  package_dir: ${JSON.stringify(path.join(ROOT, 'worker'))}`,
        '  extra_args: ["--log-level", "warning"]',
        'models:',
        '  startup: ["classifier"]',
        '',
      ].join('\n'),
    );
    const x = Buffer.concat(Array.from({ length: ROWS }, (_, i) => Buffer.from(features(16, i + 1).buffer)));
    const out = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [ROWS, 16], data: x } })['probabilities']!.data;
    expected = new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length));
  });

  after(async () => {
    if (worker !== undefined) await stopWorker('SIGTERM');
    await stack?.close();
    await redis.stop();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  /** Starts `inferneo jobs-worker` in its own process group; resolves once it runs. */
  const startWorker = async (): Promise<void> => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'inferneo.mjs'), 'jobs-worker', '--config', path.join(tmp, 'inferneo.yaml')], {
      cwd: ROOT,
      detached: true,
      env: {
        ...process.env,
        REDIS_URL: redis.url,
        INFERNEO_REDIS_PREFIX: stack.config.redis_prefix,
        INFERNEO_MODEL_REPOSITORY: MODEL_REPOSITORY,
        INFERNEO_PYTHON: VENV_PYTHON,
        INFERNEO_WORKER_CONFIG: path.join(ROOT, 'worker-config', 'worker.yaml'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    worker = { child, output: () => output };
    const deadline = Date.now() + 60_000;
    while (!output.includes('jobs worker is running')) {
      if (child.exitCode !== null) throw new Error(`jobs-worker exited with ${child.exitCode}: ${output}`);
      if (Date.now() > deadline) throw new Error(`jobs-worker did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  /** Signals the worker's whole process group (node and its Python worker) and waits for node to exit. */
  const stopWorker = async (signal: NodeJS.Signals): Promise<void> => {
    const w = worker!;
    worker = undefined;
    if (w.child.exitCode !== null || w.child.signalCode !== null) return;
    const exited = new Promise((r) => w.child.once('exit', r));
    process.kill(-w.child.pid!, signal);
    await exited;
  };

  const submit = async (): Promise<string> => {
    const rows = Array.from({ length: ROWS }, (_, i) => classifierRow(i + 1));
    const submitted = await submitFile(stack.url, { model: 'classifier', version: '1', chunk_size: '100' }, jsonl(rows));
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    return submitted.body['id'] as string;
  };

  /** Exactly one line per row, each with the model's outputs. */
  const checkResults = async (id: string): Promise<void> => {
    const job = await waitForJob(stack.url, id, undefined, 120_000);
    assert.equal(job.state, 'completed', JSON.stringify(job));
    assert.deepEqual(job.progress, { done: ROWS, failed: 0, total: ROWS });
    const { lines } = await results(stack.url, id);
    assert.equal(lines.length, ROWS);
    lines.forEach((l: ResultLine, i) => {
      assert.equal(l.row, i);
      assert.equal(l.error, undefined, `row ${i}: ${l.error}`);
      const p = l.outputs!.find((o) => o.name === 'probabilities')!.data;
      p.forEach((v, j) => assert.ok(Math.abs(v - expected[i * 3 + j]!) < 1e-6, `row ${i}`));
    });
    const client = new Redis(redis.url);
    try {
      assert.equal(await client.hlen(`${stack.config.redis_prefix}job:${id}:results`), ROWS);
    } finally {
      client.disconnect();
    }
  };

  it('finishes a job whose worker process was SIGKILLed mid-job, once restarted', async () => {
    await startWorker();
    const id = await submit();
    // Mid-chunk when a chunk's first 64 rows are recorded and the rest not (most tries catch one).
    const midChunk = (j: JobViewBody): boolean => j.progress.done >= 200 && j.progress.done % 100 !== 0;
    const before = await waitForJob(stack.url, id, midChunk, 8_000, 10).catch(() => waitForJob(stack.url, id, (j) => j.progress.done >= 200));
    assert.equal(before.state, 'running');
    await stopWorker('SIGKILL');
    const atKill = (await waitForJob(stack.url, id, () => true)).progress.done;
    assert.ok(atKill < ROWS, 'the kill came before the end');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await waitForJob(stack.url, id, () => true)).progress.done, atKill, 'nothing runs while no worker does');
    await startWorker();
    await checkResults(id);
  });

  it('finishes a job across a Redis restart (append-only file) mid-job', async () => {
    if (worker === undefined) await startWorker();
    const id = await submit();
    await waitForJob(stack.url, id, (j) => j.progress.done >= 200);
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    await checkResults(id);
    assert.equal(worker!.child.exitCode, null, 'the worker process rode out the restart');
  });
});
