import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { CHUNKS_QUEUE, JobWorkers, type JobWorkersOptions } from '../orchestrator/src/jobs/index.js';
import { classifierRow, getJob, jsonl, results, submitFile, TOKEN, waitForJob, type JobViewBody } from './support/jobs.js';
import { admin, features, inferOnce, onnxOracle, redisUrl, startStack, waitFor } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * Batch jobs through the admin API on a real stack: submitting inline and as an upload, results in
 * row order, routes, bad input, progress events, cancel, callbacks, expiry, retries after a worker
 * dies, the dashboard. The stack only takes jobs; each test runs them with JobWorkers it chooses.
 */
describe('batch jobs (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let redis: Redis;
  let workers: JobWorkers | undefined;
  let metrics = new Registry();

  const useWorkers = async (overrides: Partial<JobWorkersOptions> = {}): Promise<void> => {
    await workers?.close();
    metrics = new Registry();
    workers = new JobWorkers({
      metrics,
      redisUrl: stack.config.redis_url,
      prefix: stack.config.redis_prefix,
      registry: stack.registry,
      router: stack.router,
      scheduler: stack.scheduler,
      concurrency: 2,
      rateLimitChunks: 0,
      rateLimitWindowMs: 1000,
      rowsInFlight: 64,
      lockMs: 2000,
      ttlS: stack.config.jobs.ttl_s,
      callbackTimeoutMs: 2000,
      log: () => undefined,
      ...overrides,
    });
    await workers.start();
  };

  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.workers.heartbeat_interval_ms = 200;
      c.workers.heartbeat_timeout_ms = 1500;
      c.models.startup = ['classifier'];
      c.http.max_request_bytes = 512 * 1024;
      c.jobs.workers = false;
      c.jobs.max_upload_bytes = 256 * 1024;
      c.jobs.max_rows = 5000;
      c.jobs.backoff_ms = 500;
      c.jobs.attempts = 4;
      c.jobs.ttl_s = 3600;
    });
    redis = new Redis(redisUrl());
    await useWorkers();
  });
  after(async () => {
    await workers?.close();
    await stack?.close();
    redis?.disconnect();
  });

  const submitInline = (body: Record<string, unknown>): ReturnType<typeof admin<JobViewBody>> => admin<JobViewBody>(stack.url, 'POST', '/jobs', body);
  const rowsOf = (n: number, seed = 1): ReturnType<typeof classifierRow>[] => Array.from({ length: n }, (_, i) => classifierRow(seed + i));

  it('runs inline rows in chunks and returns one line per row, in order, equal to ONNX Runtime', async () => {
    const rows = rowsOf(50);
    const submitted = await submitInline({ model: 'classifier', version: '1', rows, chunk_size: 16 });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.progress.total, 50);
    assert.equal(submitted.body.chunks, 4);
    const done = await waitForJob(stack.url, submitted.body.id);
    assert.equal(done.state, 'completed');
    assert.deepEqual(done.progress, { done: 50, failed: 0, total: 50 });
    assert.equal(done.eta_s, 0);
    assert.ok(done.rate_rows_per_s !== null && done.rate_rows_per_s > 0);
    const out = await results(stack.url, done.id);
    assert.equal(out.status, 200);
    assert.match(out.type ?? '', /application\/x-ndjson/);
    assert.deepEqual(out.lines.map((l) => l.row), rows.map((_, i) => i));
    const x = Buffer.concat(rows.map((_, i) => Buffer.from(features(16, i + 1).buffer)));
    const oracle = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [50, 16], data: x } })['probabilities']!.data;
    const probs = new Float32Array(oracle.buffer.slice(oracle.byteOffset, oracle.byteOffset + oracle.length));
    out.lines.forEach((l, i) => {
      assert.equal(l.model_name, 'classifier');
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
      { ...classifierRow(3), outputs: [{ name: 'label' }] },
    ]);
    const submitted = await submitFile(stack.url, { model: 'classifier', chunk_size: '2', priority: '1' }, text.replace(/\n/, '\n\n'));
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
    assert.deepEqual(lines[5]!.outputs!.map((o) => o.name), ['label'], 'a row may ask for some outputs only');
  });

  it("splits a job over a route's arms like online traffic", async () => {
    assert.equal((await admin(stack.url, 'PUT', '/routes/jobs-ab', { arms: [{ model: 'classifier', version: '1', weight: 1 }, { model: 'classifier', version: '2', weight: 1 }] })).status, 200);
    const submitted = await submitInline({ model: 'jobs-ab', rows: rowsOf(200), chunk_size: 50 });
    assert.equal(submitted.status, 202);
    await waitForJob(stack.url, submitted.body.id);
    const { lines } = await results(stack.url, submitted.body.id);
    const versions = new Map<string, number>();
    for (const l of lines) versions.set(l.model_version!, (versions.get(l.model_version!) ?? 0) + 1);
    assert.ok((versions.get('1') ?? 0) > 40 && (versions.get('2') ?? 0) > 40, JSON.stringify([...versions]));
    assert.equal((await admin(stack.url, 'DELETE', '/routes/jobs-ab')).status, 200);
  });

  describe('bad submissions: a clear 4xx, and nothing left behind', () => {
    let keysBefore: number;
    let jobsBefore: number;
    before(async () => {
      keysBefore = (await redis.keys(`${stack.config.redis_prefix}job:*`)).length;
      jobsBefore = (await admin<unknown[]>(stack.url, 'GET', '/jobs')).body.length;
    });
    after(async () => {
      assert.equal((await redis.keys(`${stack.config.redis_prefix}job:*`)).length, keysBefore, 'no keys of refused jobs remain');
      assert.equal((await admin<unknown[]>(stack.url, 'GET', '/jobs')).body.length, jobsBefore, 'no refused job is listed');
      assert.equal((await admin<unknown[]>(stack.url, 'GET', '/jobs?limit=1')).body.length, 1);
    });

    const refusedUpload: [string, Record<string, string>, string, number, RegExp][] = [
      ['a file that is not JSON Lines', { model: 'classifier' }, `${JSON.stringify(classifierRow(1))}\n{"inputs": [\n`, 400, /line 2 is not JSON .*JSON Lines/],
      ['a pretty-printed JSON document', { model: 'classifier' }, JSON.stringify(classifierRow(1), null, 2), 400, /line 1 is not JSON/],
      ['an unknown route', { model: 'nope' }, jsonl([classifierRow(1)]), 404, /unknown model or route 'nope'/],
      ['an unknown version', { model: 'classifier', version: '9' }, jsonl([classifierRow(1)]), 404, /version/],
      ['a chunk size of 0', { model: 'classifier', chunk_size: '0' }, jsonl([classifierRow(1)]), 400, /chunk_size: Too small/],
      ['a chunk size over 10000', { model: 'classifier', chunk_size: '10001' }, jsonl([classifierRow(1)]), 400, /chunk_size: Too big/],
      ['a priority out of range', { model: 'classifier', priority: '101' }, jsonl([classifierRow(1)]), 400, /priority: Too big/],
      ['a callback that is not http(s)', { model: 'classifier', callback_url: 'ftp://example.com/x' }, jsonl([classifierRow(1)]), 400, /callback_url: expected an http/],
      ['an unknown form field', { model: 'classifier', colour: 'red' }, jsonl([classifierRow(1)]), 400, /Unrecognized key.*colour/],
      ['an empty file', { model: 'classifier' }, '\n\n', 400, /no rows/],
      ['rows of which none matches the model', { model: 'classifier' }, jsonl([{ inputs: [] }, { inputs: [{ name: 'features', datatype: 'INT8', shape: [1, 16], data: Array(16).fill(1) }] }]), 400, /none of the 2 row\(s\) matches the inputs of classifier: row 0 \(line 1\): .*non-empty 'inputs' array; row 1 \(line 2\): .*datatype INT8/],
      ['more rows than jobs.max_rows', { model: 'classifier' }, '{}\n'.repeat(5001), 400, /more than 5000 rows \(jobs\.max_rows\)/],
      ['an upload over jobs.max_upload_bytes', { model: 'classifier' }, jsonl(rowsOf(1200)), 413, /larger than the limit of 262144 bytes/],
    ];
    for (const [what, fields, text, status, message] of refusedUpload) {
      it(`refuses ${what} (${status})`, async () => {
        const r = await submitFile(stack.url, fields, text);
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.match(r.body['error'] as string, message);
      });
    }

    it('refuses malformed multipart requests and JSON bodies', async () => {
      const wrongField = await submitFile(stack.url, { model: 'classifier' }, jsonl([classifierRow(1)]), 'data');
      assert.equal(wrongField.status, 400);
      assert.match(wrongField.body['error'] as string, /unexpected file field 'data'/);
      const form = new FormData();
      form.append('model', 'classifier');
      const noFile = await fetch(`${stack.url}/admin/jobs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
      assert.equal(noFile.status, 400);
      assert.match(((await noFile.json()) as { error: string }).error, /has no file 'rows'/);
      form.append('rows', jsonl([classifierRow(1)]));
      const textRows = await fetch(`${stack.url}/admin/jobs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
      assert.equal(textRows.status, 400);
      assert.match(((await textRows.json()) as { error: string }).error, /'rows' must be a file/);
      const two = new FormData();
      two.append('model', 'classifier');
      two.append('rows', new Blob([jsonl([classifierRow(1)])]), 'a.jsonl');
      two.append('rows', new Blob([jsonl([classifierRow(1)])]), 'b.jsonl');
      assert.equal((await fetch(`${stack.url}/admin/jobs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: two })).status, 400);

      assert.match((await submitInline({ model: 'classifier', rows: [] })).body.error as unknown as string, /rows: Too small/);
      assert.equal((await submitInline({ model: 'classifier', rows: [1] })).status, 400);
      assert.equal((await submitInline({ rows: rowsOf(1) })).status, 400);
      const big = await submitInline({ model: 'classifier', rows: rowsOf(2000) });
      assert.equal(big.status, 413);
      assert.match((big.body as unknown as { error: string }).error, /exceeds the limit of 524288 bytes/);
      assert.equal((await admin(stack.url, 'POST', '/jobs', { model: 'classifier', rows: rowsOf(1) }, null)).status, 401);
    });
  });

  it('streams progress as server-sent events until the job ends', async () => {
    const submitted = await submitInline({ model: 'classifier', version: '2', rows: rowsOf(300), chunk_size: 25 });
    const res = await fetch(`${stack.url}/admin/jobs/${submitted.body.id}/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text(); // the server ends the stream after the job ends
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('event:'))
      .map((e) => ({ event: /^event: (\w+)/.exec(e)![1], data: JSON.parse(/\ndata: (.*)/.exec(e)![1]!) as JobViewBody }));
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data);
    assert.ok(progress.length >= 1);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.progress.done >= progress[i - 1]!.progress.done, 'progress never goes back');
    assert.equal(progress[progress.length - 1]!.state, 'completed');
    assert.deepEqual(events[events.length - 1], { event: 'end', data: { id: submitted.body.id, state: 'completed' } });
    assert.equal((await fetch(`${stack.url}/admin/jobs/00000000-0000-4000-8000-000000000000/events`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  });

  it('cancels a job: chunks not started are dropped, the running one finishes', async () => {
    await useWorkers({ concurrency: 1, rateLimitChunks: 2, rateLimitWindowMs: 1000 });
    try {
      const submitted = await submitInline({ model: 'classifier', rows: rowsOf(200), chunk_size: 10 });
      await waitForJob(stack.url, submitted.body.id, (j) => j.progress.done >= 10);
      const cancelled = await admin<JobViewBody>(stack.url, 'DELETE', `/jobs/${submitted.body.id}`);
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.body.state, 'cancelled');
      const final = await waitForJob(stack.url, submitted.body.id, (j) => j.finished_at !== undefined, 20_000);
      assert.equal(final.state, 'cancelled');
      const doneAtEnd = final.progress.done;
      assert.ok(doneAtEnd < 200 && doneAtEnd % 10 === 0, `only whole chunks ran: ${doneAtEnd}`);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal((await getJob(stack.url, submitted.body.id)).progress.done, doneAtEnd, 'nothing ran after the cancel');
      const waiting = await redis.zcard(`${stack.config.redis_prefix}bull:${CHUNKS_QUEUE}:prioritized`);
      assert.equal(waiting, 0, 'the queued chunks were removed');
      assert.equal((await results(stack.url, submitted.body.id)).lines.length, doneAtEnd);
      const again = await admin<{ error: string }>(stack.url, 'DELETE', `/jobs/${submitted.body.id}`);
      assert.equal(again.status, 409);
      assert.match(again.body.error, /has cancelled already/);
    } finally {
      await useWorkers();
    }
  });

  it('POSTs a summary to the callback URL when the job completes', async () => {
    const received: { body: Record<string, unknown>; headers: IncomingMessage['headers'] }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ body: JSON.parse(body) as Record<string, unknown>, headers: req.headers });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/done`;
      const submitted = await submitInline({ model: 'classifier', rows: rowsOf(20), callback_url: url });
      assert.equal(submitted.body.state, 'queued');
      await waitFor('the callback', () => received.length > 0, 20_000);
      const job = await waitForJob(stack.url, submitted.body.id, (j) => j.callback === 'HTTP 204');
      assert.equal(received.length, 1);
      assert.equal(received[0]!.body['id'], submitted.body.id);
      assert.equal(received[0]!.body['state'], 'completed');
      assert.deepEqual(received[0]!.body['progress'], { done: 20, failed: 0, total: 20 });
      assert.equal(received[0]!.body['results'], `/admin/jobs/${submitted.body.id}/results`);
      assert.equal(received[0]!.headers['content-type'], 'application/json');
      assert.equal(job.callback, 'HTTP 204');
    } finally {
      server.close();
    }
  });

  it('lists jobs, answers 400/404/409 for bad ids and states, and lets finished jobs expire', async () => {
    const submitted = await submitInline({ model: 'classifier', rows: rowsOf(5) });
    await waitForJob(stack.url, submitted.body.id);
    const list = await admin<JobViewBody[]>(stack.url, 'GET', '/jobs?limit=1000');
    assert.equal(list.status, 200);
    assert.equal(list.body[0]!.id, submitted.body.id, 'newest first');
    assert.equal((await admin(stack.url, 'GET', '/jobs?limit=0')).status, 400);
    const badId = await admin<{ error: string }>(stack.url, 'GET', '/jobs/not-a-job');
    assert.equal(badId.status, 400);
    assert.match(badId.body.error, /^job: expected a job id/);
    const unknown = '00000000-0000-4000-8000-000000000000';
    assert.equal((await admin(stack.url, 'GET', `/jobs/${unknown}`)).status, 404);
    assert.equal((await admin(stack.url, 'DELETE', `/jobs/${unknown}`)).status, 404);
    assert.equal((await results(stack.url, unknown)).status, 404);
    assert.equal((await admin(stack.url, 'DELETE', `/jobs/${submitted.body.id}`)).status, 409);
    // Finished: its records expire after jobs.ttl_s.
    for (const key of [`job:${submitted.body.id}`, `job:${submitted.body.id}:results`]) {
      const ttl = await redis.ttl(`${stack.config.redis_prefix}${key}`);
      assert.ok(ttl > 3500 && ttl <= 3600, `${key} expires in ${ttl} s`);
    }
    assert.equal(await redis.exists(`${stack.config.redis_prefix}job:${submitted.body.id}:in:0`), 0, 'inputs are deleted as chunks finish');
    // An expired job disappears from the list and answers 404.
    await redis.del(`${stack.config.redis_prefix}job:${submitted.body.id}`);
    assert.equal((await admin(stack.url, 'GET', `/jobs/${submitted.body.id}`)).status, 404);
    assert.ok(!(await admin<JobViewBody[]>(stack.url, 'GET', '/jobs?limit=1000')).body.some((j) => j.id === submitted.body.id));
    const audit = await admin<{ action: string; target: string; body?: Record<string, unknown> }[]>(stack.url, 'GET', '/audit?limit=50');
    const entry = audit.body.find((e) => e.action === 'POST /jobs' && e.target === submitted.body.id)!;
    assert.deepEqual(entry.body, { model: 'classifier', rows: 5, chunk_size: 256, priority: 5 }, 'the audit log records the job, not its rows');
  });

  it('retries the rows a dying worker held, so that every row still gets its outputs', async () => {
    await waitFor('the worker serving', () => stack.pool.sessions().some((s) => s.state === 'ready'));
    // Rows one at a time, without pause: one is on the worker whenever it dies.
    await useWorkers({ concurrency: 1, rowsInFlight: 1 });
    try {
      const submitted = await submitInline({ model: 'classifier', version: '1', rows: rowsOf(1000), chunk_size: 100 });
      await waitForJob(stack.url, submitted.body.id, (j) => j.progress.done >= 100, 30_000, 10);
      const pid = stack.supervisor!.pids().get('worker-0')!;
      process.kill(pid, 'SIGKILL');
      const done = await waitForJob(stack.url, submitted.body.id);
      assert.equal(done.state, 'completed');
      assert.deepEqual(done.progress, { done: 1000, failed: 0, total: 1000 });
      assert.ok(stack.supervisor!.restartCount('worker-0') >= 1);
      const online = await Promise.all(Array.from({ length: 10 }, (_, i) => inferOnce(stack.url, 'classifier', {}, i)));
      assert.deepEqual(online.map((o) => o.status), Array(10).fill(200), 'online requests are served again');
      const chunks = await metrics.getSingleMetricAsString('inferneo_job_chunks_total');
      assert.ok(Number(/inferneo_job_chunks_total\{outcome="completed"\} (\d+)/.exec(chunks)?.[1]) >= 10, chunks);
      assert.match(chunks, /inferneo_job_chunks_total\{outcome="retried"\} [1-9]/, 'the chunks the dying worker held were retried');
      assert.match(await metrics.getSingleMetricAsString('inferneo_job_rows_total'), /inferneo_job_rows_total\{outcome="done"\} 1000\n/);
    } finally {
      await useWorkers();
    }
  });

  it('fails a job whose chunk keeps failing after every attempt, naming the chunk', async () => {
    await workers!.close();
    const submitted = await submitInline({ model: 'classifier', rows: rowsOf(30), chunk_size: 10 });
    await redis.del(`${stack.config.redis_prefix}job:${submitted.body.id}:in:1`); // lost: chunk 1 cannot run
    await useWorkers();
    const failed = await waitForJob(stack.url, submitted.body.id, undefined, 60_000);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error!, /^chunk 1: the input of chunk 1 of job .* is missing from Redis; 10 row\(s\) cannot run/);
    assert.equal((await admin(stack.url, 'DELETE', `/jobs/${submitted.body.id}`)).status, 409);
  });

  it('finalizes a job whose finalizer died, when it is next read', async () => {
    const submitted = await submitInline({ model: 'classifier', rows: rowsOf(3) });
    await waitForJob(stack.url, submitted.body.id);
    // As if the parent's processor had crashed after BullMQ completed it: no final state, no expiry.
    const key = `${stack.config.redis_prefix}job:${submitted.body.id}`;
    await redis.hdel(key, 'state', 'finished_at');
    await redis.persist(key);
    const job = await getJob(stack.url, submitted.body.id);
    assert.equal(job.state, 'completed');
    assert.ok(job.finished_at !== undefined);
    assert.ok((await redis.ttl(key)) > 0);
  });

  it('describes the job endpoints in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> }; responses: Record<string, { content?: Record<string, unknown> }> }>> };
    const post = doc.paths['/admin/jobs']!['post']!;
    assert.ok(post.requestBody!.content['application/json'] && post.requestBody!.content['multipart/form-data']);
    assert.ok(post.responses['202'] && post.responses['413']);
    assert.ok(doc.paths['/admin/jobs/{job}']!['delete']);
    assert.ok(doc.paths['/admin/jobs/{job}/events']!['get']!.responses['200']!.content!['text/event-stream']);
    assert.ok(doc.paths['/admin/jobs/{job}/results']!['get']!.responses['200']!.content!['application/x-ndjson']);
  });

  it('serves the bull-board dashboard at /admin/queues behind the admin token', async () => {
    const none = await fetch(`${stack.url}/admin/queues`, { redirect: 'manual' });
    assert.equal(none.status, 401);
    assert.equal((await fetch(`${stack.url}/admin/queues`, { headers: { authorization: 'Bearer wrong' } })).status, 403);
    assert.equal((await fetch(`${stack.url}/admin/queues?token=wrong`, { redirect: 'manual' })).status, 403);
    const bearer = await fetch(`${stack.url}/admin/queues`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bearer.status, 200);
    assert.match(await bearer.text(), /<html/i);
    const login = await fetch(`${stack.url}/admin/queues?token=${TOKEN}`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/admin/queues');
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly; SameSite=Strict/);
    assert.ok(!cookie.includes(TOKEN), 'the cookie is not the token');
    const api = await fetch(`${stack.url}/admin/queues/api/queues`, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(api.status, 200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    assert.deepEqual(names, ['chunks', 'jobs']);
    assert.equal((await fetch(`${stack.url}/admin/queues/api/queues`, { headers: { cookie: 'inferneo_dashboard=forged' } })).status, 403);
  });
});
