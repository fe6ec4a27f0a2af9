import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { admin, binaryRequest, features, inferOnce, onnxOracle, parseBinaryResponse, startStack, waitFor } from './support/stack.js';
import { buildTritonRepository } from './support/triton-repository.js';
import { startTriton, type TritonServer } from './support/triton-server.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface TritonStats {
  inference_count: number;
  execution_count: number;
  inference_stats: { success: { count: number } };
  batch_stats: { batch_size: number }[];
}

/** Float outputs of Triton (ONNX Runtime in its Python stub) against the ONNX oracle: equal within float rounding. */
function assertCloseFloats(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: byte length`);
  const a = new Float32Array(new Uint8Array(actual).buffer);
  const e = new Float32Array(new Uint8Array(expected).buffer);
  for (let i = 0; i < e.length; i++) {
    assert.ok(Math.abs(a[i]! - e[i]!) <= 1e-5 + 1e-5 * Math.abs(e[i]!), `${what}[${i}]: ${a[i]} vs oracle ${e[i]}`);
  }
}

/** A binary-extension request of `rows` rows of `width` features to `target` (a model path under /v2/models). */
async function inferBinary(url: string, target: string, input: string, rows: number, width: number, seed: number): Promise<{ status: number; header: Record<string, unknown>; outputs: Map<string, Buffer>; data: Buffer }> {
  const data = Buffer.from(features(rows * width, seed).buffer);
  const { body, headers } = binaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [rows, width], parameters: { binary_data_size: data.length } }], parameters: { binary_data_output: true } }, data);
  const res = await fetch(`${url}/v2/models/${target}/infer`, { method: 'POST', headers, body });
  const raw = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, header: JSON.parse(raw.toString()) as Record<string, unknown>, outputs: new Map(), data };
  const { header, outputs } = parseBinaryResponse(raw, Number(res.headers.get('inference-header-content-length')));
  return { status: res.status, header, outputs, data };
}

/**
 * The Triton backend against a REAL tritonserver 2.51 (explicit model control, Python backend running
 * ONNX Runtime on the bundled models' weights) and real Python workers: inference over HTTP and gRPC
 * checked against the ONNX oracle, batching seen in Triton's own statistics, model control seen in
 * Triton's repository index, a refused load, a route mixing Triton and worker arms, and the circuit
 * breaker through a Triton crash and restart.
 */
describe('Triton backend (real tritonserver, real workers)', function () {
  this.timeout(240_000);
  let repo: string;
  let triton: TritonServer;
  let stack: Stack;

  const tritonGet = async <T>(p: string, method = 'GET'): Promise<T> => (await (await fetch(`${triton.httpUrl}${p}`, { method })).json()) as T;
  /** Versions Triton reports READY for `model`. */
  const tritonReady = async (model: string): Promise<string[]> =>
    (await tritonGet<{ name: string; version?: string; state?: string }[]>('/v2/repository/index', 'POST'))
      .filter((r) => r.name === model && r.state === 'READY')
      .map((r) => r.version!)
      .sort();
  const tritonStats = async (model: string, version: string): Promise<TritonStats> =>
    (await tritonGet<{ model_stats: TritonStats[] }>(`/v2/models/${model}/versions/${version}/stats`)).model_stats[0]!;

  before(async () => {
    repo = buildTritonRepository();
    triton = await startTriton({ modelRepository: repo });
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.triton.endpoints = [triton.httpUrl];
      c.triton.models = ['tri_mlp', 'tri_classifier', 'text_stats'];
      c.triton.breaker = { failures: 3, cooldown_ms: 1000 };
      c.triton.retries = 2;
      c.models.startup = ['classifier', 'tri_mlp', 'tri_classifier'];
    });
  });

  after(async () => {
    await stack?.close();
    await triton?.stop();
    if (repo !== undefined) rmSync(repo, { recursive: true, force: true });
  });

  it('registers the models triton.models names with backend triton: from Triton when the local repository lacks them', async () => {
    const mlp = await admin<{ backend: string; source: string; max_batch_size: number; versions: { version: string; state: string; backend: string }[] }>(stack.url, 'GET', '/models/tri_mlp');
    assert.equal(mlp.status, 200);
    assert.equal(mlp.body.backend, 'triton');
    assert.equal(mlp.body.source, 'triton://tri_mlp');
    assert.equal(mlp.body.max_batch_size, 128);
    assert.deepEqual(
      mlp.body.versions.map((v) => [v.version, v.state, v.backend]),
      [['1', 'ready', 'triton']],
    );
    // The model's metadata comes from Triton's config.
    const meta = (await (await fetch(`${stack.url}/v2/models/tri_mlp`)).json()) as { inputs: unknown[]; platform: string };
    assert.deepEqual(meta.inputs, [{ name: 'INPUT0', datatype: 'FP32', shape: [-1, 256] }]);
    assert.equal(meta.platform, 'python');
    const classifier = await admin<{ versions: { version: string }[] }>(stack.url, 'GET', '/models/tri_classifier');
    assert.deepEqual(
      classifier.body.versions.map((v) => v.version),
      ['1', '2'],
    );
    // In the local repository too: registered from it, but served by Triton.
    const text = await admin<{ backend: string; source: string }>(stack.url, 'GET', '/models/text_stats');
    assert.equal(text.body.backend, 'triton');
    assert.ok(text.body.source.endsWith(path.join('model-repository', 'text_stats')), text.body.source);
    // The others stay on the Python workers.
    assert.equal((await admin<{ backend: string }>(stack.url, 'GET', '/models/classifier')).body.backend, 'python');
    assert.deepEqual(await tritonReady('tri_mlp'), ['1']);
    assert.deepEqual(await tritonReady('tri_classifier'), ['1', '2']);
  });

  it('infers through Inferneo to Triton with binary tensors: outputs equal the ONNX oracle', async () => {
    const r = await inferBinary(stack.url, 'tri_mlp', 'INPUT0', 5, 256, 7);
    assert.equal(r.status, 200, JSON.stringify(r.header));
    assert.equal(r.header['model_name'], 'tri_mlp');
    assert.equal(r.header['model_version'], '1');
    const oracle = onnxOracle('mlp_tiny', '1', { INPUT0: { dtype: 'float32', shape: [5, 256], data: r.data } });
    assertCloseFloats(r.outputs.get('OUTPUT0')!, oracle['OUTPUT0']!.data, 'OUTPUT0');
    // JSON in, JSON out, one output named.
    const x = Array.from(features(16, 3));
    const res = await fetch(`${stack.url}/v2/models/tri_classifier/versions/1/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: x }], outputs: [{ name: 'label' }] }),
    });
    const body = (await res.json()) as { model_version: string; outputs: { name: string; data: number[] }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(
      body.outputs.map((o) => o.name),
      ['label'],
    );
    const want = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [1, 16], data: Buffer.from(new Float32Array(x).buffer) } });
    assert.equal(body.outputs[0]!.data[0], Number(want['label']!.data.readBigInt64LE(0)));
  });

  it('serves BYTES tensors through Triton, loading the model on its first request', async () => {
    assert.deepEqual(await tritonReady('text_stats'), []);
    const res = await fetch(`${stack.url}/v2/models/text_stats/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [2, 1], data: ['héllo', 'Triton'] }] }),
    });
    const body = (await res.json()) as { outputs: { name: string; data: unknown[] }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(Object.fromEntries(body.outputs.map((o) => [o.name, o.data])), { UPPER: ['HÉLLO', 'TRITON'], LENGTH: [5, 6] });
    assert.deepEqual(await tritonReady('text_stats'), ['1']);
  });

  it("sends the batch of many callers to Triton as ONE request (Triton's own statistics)", async () => {
    const inferneoStats = async (): Promise<{ execution_count: number; inference_count: number }> =>
      ((await (await fetch(`${stack.url}/v2/models/tri_classifier/versions/1/stats`)).json()) as { model_stats: { execution_count: number; inference_count: number }[] }).model_stats[0]!;
    const beforeTriton = await tritonStats('tri_classifier', '1');
    const beforeInferneo = await inferneoStats();
    const callers = 48;
    const results = await Promise.all(Array.from({ length: callers }, (_, i) => inferBinary(stack.url, 'tri_classifier/versions/1', 'features', 1, 16, 1000 + i)));
    assert.ok(results.every((r) => r.status === 200));
    // Every caller got its own row's answer.
    const all = Buffer.concat(results.map((r) => r.data));
    const oracle = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [callers, 16], data: all } });
    results.forEach((r, i) => assertCloseFloats(r.outputs.get('probabilities')!, oracle['probabilities']!.data.subarray(i * 12, (i + 1) * 12), `caller ${i} probabilities`));
    const afterTriton = await tritonStats('tri_classifier', '1');
    const afterInferneo = await inferneoStats();
    const tritonRequests = afterTriton.inference_stats.success.count - beforeTriton.inference_stats.success.count;
    const executions = afterInferneo.execution_count - beforeInferneo.execution_count;
    console.log(`      ${callers} callers → ${executions} Inferneo batches → ${tritonRequests} Triton requests, ${afterTriton.execution_count - beforeTriton.execution_count} Triton executions`);
    assert.equal(afterTriton.inference_count - beforeTriton.inference_count, callers, 'Triton counted every row');
    assert.equal(tritonRequests, executions, 'one Triton request per Inferneo batch');
    assert.ok(tritonRequests < callers, `${callers} callers went out as ${tritonRequests} Triton requests`);
    assert.ok(
      afterTriton.batch_stats.some((b) => b.batch_size > 1),
      `Triton executed multi-row requests: ${JSON.stringify(afterTriton.batch_stats.map((b) => b.batch_size))}`,
    );
    assert.ok(afterTriton.execution_count - beforeTriton.execution_count <= tritonRequests);
  });

  it("drives Triton's explicit model control: unload, load and a hot-swap under load with no failed request", async () => {
    const unloaded = await admin<{ state: string }>(stack.url, 'POST', '/models/tri_classifier/versions/2/unload');
    assert.equal(unloaded.body.state, 'unloaded');
    assert.deepEqual(await tritonReady('tri_classifier'), ['1']);

    assert.equal((await admin(stack.url, 'PUT', '/routes/tri-swap', { arms: [{ name: 'v1', model: 'tri_classifier', version: '1', weight: 100 }] })).status, 200);
    const outcomes: { status: number; version: string | undefined }[] = [];
    let running = true;
    const clients = Array.from({ length: 6 }, async (_, c) => {
      let i = 0;
      while (running) outcomes.push(await inferOnce(stack.url, 'tri-swap', {}, c * 10_000 + i++));
    });
    await new Promise((r) => setTimeout(r, 300));
    const loaded = await admin<{ state: string }>(stack.url, 'POST', '/models/tri_classifier/versions/2/load');
    assert.equal(loaded.body.state, 'ready', JSON.stringify(loaded.body));
    assert.deepEqual(await tritonReady('tri_classifier'), ['1', '2']);
    await admin(stack.url, 'PUT', '/routes/tri-swap', {
      arms: [
        { name: 'v1', model: 'tri_classifier', version: '1', weight: 0 },
        { name: 'v2', model: 'tri_classifier', version: '2', weight: 100 },
      ],
    });
    const gone = await admin<{ state: string }>(stack.url, 'POST', '/models/tri_classifier/versions/1/unload');
    assert.equal(gone.body.state, 'unloaded', JSON.stringify(gone.body));
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all(clients);
    assert.deepEqual(await tritonReady('tri_classifier'), ['2']);
    const failed = outcomes.filter((o) => o.status !== 200);
    assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} requests failed during the swap`);
    assert.equal(outcomes[0]!.version, '1');
    assert.equal(outcomes[outcomes.length - 1]!.version, '2');
    // Back to both versions for the tests that follow.
    assert.equal((await admin<{ state: string }>(stack.url, 'POST', '/models/tri_classifier/versions/1/load')).body.state, 'ready');
    await admin(stack.url, 'DELETE', '/routes/tri-swap');
  });

  it("marks a version Triton refuses failed with Triton's message, and the other versions keep serving", async () => {
    assert.equal((await admin(stack.url, 'POST', '/models/tri_classifier/versions', { version: '3' })).status, 201);
    const load = await admin<{ error: string; code: string }>(stack.url, 'POST', '/models/tri_classifier/versions/3/load');
    assert.equal(load.status, 400);
    assert.equal(load.body.code, 'LOAD_FAILED');
    assert.match(load.body.error, /deliberately missing/);
    const model = await admin<{ versions: { version: string; state: string; reason?: string }[] }>(stack.url, 'GET', '/models/tri_classifier');
    const v3 = model.body.versions.find((v) => v.version === '3')!;
    assert.equal(v3.state, 'failed');
    assert.match(v3.reason!, /tri_broken cannot start: the weights are deliberately missing/);
    assert.deepEqual(await tritonReady('tri_classifier'), ['1', '2']);
    for (const v of ['1', '2']) assert.equal((await inferBinary(stack.url, `tri_classifier/versions/${v}`, 'features', 2, 16, 5)).status, 200);
    const refused = await inferBinary(stack.url, 'tri_classifier/versions/3', 'features', 1, 16, 5);
    assert.equal(refused.status, 503);
    assert.match(String(refused.header['error']), /failed to load: .*deliberately missing/);
    assert.equal((await admin(stack.url, 'DELETE', '/models/tri_classifier/versions/3')).status, 200);
  });

  it('refuses to register a Triton model Triton cannot load, and fails the load of one registered from a directory', async () => {
    const remote = await admin<{ error: string; code: string }>(stack.url, 'POST', '/models', { name: 'tri_broken', backend: 'triton' });
    assert.equal(remote.status, 400, JSON.stringify(remote.body));
    assert.equal(remote.body.code, 'LOAD_FAILED');
    assert.match(remote.body.error, /deliberately missing/);
    const unknown = await admin<{ code: string }>(stack.url, 'POST', '/models', { name: 'no_such_model', backend: 'triton' });
    assert.equal(unknown.status, 404);
    const local = await admin(stack.url, 'POST', '/models', { name: 'tri_broken', backend: 'triton', source: path.join(repo, 'tri_broken') });
    assert.equal(local.status, 201, JSON.stringify(local.body));
    const load = await admin<{ error: string }>(stack.url, 'POST', '/models/tri_broken/versions/1/load');
    assert.equal(load.status, 400);
    const record = await admin<{ versions: { state: string; reason?: string }[] }>(stack.url, 'GET', '/models/tri_broken');
    assert.equal(record.body.versions[0]!.state, 'failed');
    assert.match(record.body.versions[0]!.reason!, /deliberately missing/);
    assert.equal((await admin(stack.url, 'DELETE', '/models/tri_broken')).status, 200);
  });

  it('serves a route with one arm on Triton and one on Python workers, both answering like the oracle', async () => {
    const put = await admin(stack.url, 'PUT', '/routes/mixed', {
      arms: [
        { name: 'workers', model: 'classifier', version: '1', weight: 50 },
        { name: 'triton', model: 'tri_classifier', version: '1', weight: 50 },
      ],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const x = features(16, 42);
    const want = onnxOracle('classifier', '1', { features: { dtype: 'float32', shape: [1, 16], data: Buffer.from(x.buffer) } });
    const arms = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${stack.url}/v2/models/mixed/infer`, {
        method: 'POST',
        headers: { 'x-inferneo-route-key': `user-${i}` },
        body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array.from(x) }], outputs: [{ name: 'probabilities', parameters: { binary_data: true } }] }),
      });
      assert.equal(res.status, 200);
      const arm = res.headers.get('x-inferneo-arm')!;
      arms.set(arm, (arms.get(arm) ?? 0) + 1);
      const { header, outputs } = parseBinaryResponse(Buffer.from(await res.arrayBuffer()), Number(res.headers.get('inference-header-content-length')));
      assert.equal(header['model_name'], arm === 'triton' ? 'tri_classifier' : 'classifier');
      assertCloseFloats(outputs.get('probabilities')!, want['probabilities']!.data, `arm ${arm}`);
    }
    assert.deepEqual([...arms.keys()].sort(), ['triton', 'workers']);
    await admin(stack.url, 'DELETE', '/routes/mixed');
  });

  it('infers through Inferneo to Triton over gRPC: outputs equal the ONNX oracle', async () => {
    const grpcStack = await startStack((c) => {
      c.workers.spawn = 0;
      c.triton.endpoints = [triton.grpcAddress];
      c.triton.protocol = 'grpc';
      c.triton.models = ['*'];
      c.models.startup = ['tri_mlp', 'tri_classifier'];
    });
    try {
      const r = await inferBinary(grpcStack.url, 'tri_mlp', 'INPUT0', 3, 256, 11);
      assert.equal(r.status, 200, JSON.stringify(r.header));
      const oracle = onnxOracle('mlp_tiny', '1', { INPUT0: { dtype: 'float32', shape: [3, 256], data: r.data } });
      assertCloseFloats(r.outputs.get('OUTPUT0')!, oracle['OUTPUT0']!.data, 'OUTPUT0 over gRPC');
      // Batches go out as one ModelInfer call too.
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => inferBinary(grpcStack.url, 'tri_classifier/versions/2', 'features', 1, 16, 500 + i)));
      assert.ok(results.every((x) => x.status === 200));
      const all = Buffer.concat(results.map((x) => x.data));
      const want = onnxOracle('classifier', '2', { features: { dtype: 'float32', shape: [16, 16], data: all } });
      results.forEach((x, i) => assertCloseFloats(x.outputs.get('probabilities')!, want['probabilities']!.data.subarray(i * 12, (i + 1) * 12), `gRPC caller ${i}`));
      const model = await admin<{ source: string; versions: { version: string; state: string }[] }>(grpcStack.url, 'GET', '/models/tri_classifier');
      assert.equal(model.body.source, 'triton://tri_classifier');
      // '*': every model of Triton's repository is Triton-hosted, the bundled text_stats included.
      assert.equal((await admin<{ backend: string }>(grpcStack.url, 'GET', '/models/text_stats')).body.backend, 'triton');
      assert.equal((await admin<{ backend: string }>(grpcStack.url, 'GET', '/models/classifier')).body.backend, 'python');
      // Versions of a Triton-hosted model need no local directory, but must be integers.
      assert.equal((await admin(grpcStack.url, 'POST', '/models/tri_classifier/versions', { version: 'x' })).status, 400);
      assert.equal((await admin(grpcStack.url, 'POST', '/models/tri_classifier/versions', { version: '3' })).status, 201);
      // Triton's repository API on Inferneo registers a Triton model it did not know yet (tri_broken
      // failed to register at start): Triton refuses it, and says why.
      assert.equal((await admin(grpcStack.url, 'GET', '/models/tri_broken')).status, 404);
      const res = await fetch(`${grpcStack.url}/v2/repository/models/tri_broken/load`, { method: 'POST' });
      const body = (await res.json()) as { error: string };
      assert.equal(res.status, 400);
      assert.match(body.error, /cannot load model 'tri_broken', so its configuration is unknown: .*deliberately missing/);
    } finally {
      await grpcStack.close();
    }
  });

  it('fails fast with 503 naming Triton and the reason while the circuit is open, and recovers by itself when Triton is back', async () => {
    assert.equal((await inferBinary(stack.url, 'tri_mlp', 'INPUT0', 1, 256, 1)).status, 200);
    assert.equal((await admin<{ state: string }>(stack.url, 'POST', '/models/text_stats/versions/1/unload')).body.state, 'unloaded');
    const { httpPort, grpcPort } = triton;
    await triton.kill();

    // The first request finds Triton gone: its retries fail, the third failure opens the circuit.
    let t = performance.now();
    const first = await inferBinary(stack.url, 'tri_mlp', 'INPUT0', 1, 256, 2);
    const firstMs = performance.now() - t;
    assert.equal(first.status, 503);
    assert.match(String(first.header['error']), new RegExp(`Triton endpoint ${triton.httpUrl.replace(/[.]/g, '\\.')} is unavailable \\(circuit open`));
    assert.match(String(first.header['error']), /ECONNREFUSED/);
    assert.equal(stack.triton!.endpointStates()[0]!.state, 'open');
    const scraped = await (await fetch(`${stack.url}/metrics`)).text();
    const series = `inferneo_triton_endpoint_circuit_state{endpoint="${stack.triton!.endpointStates()[0]!.endpoint}",state="open"} 1`;
    assert.ok(scraped.includes(series), `/metrics has ${series}`);
    // Model readiness says so (Triton's protocol: 400 = not ready); the server as a whole stays ready.
    assert.equal((await fetch(`${stack.url}/v2/models/tri_mlp/ready`)).status, 400);
    assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 200);

    // While it is open, requests fail at once, with the same reason.
    t = performance.now();
    const fast = await Promise.all(Array.from({ length: 20 }, () => inferBinary(stack.url, 'tri_classifier/versions/1', 'features', 1, 16, 3)));
    const fastMs = (performance.now() - t) / 20;
    for (const r of fast) {
      assert.equal(r.status, 503);
      assert.match(String(r.header['error']), /Triton endpoint .* is unavailable .*(ECONNREFUSED|probe failed)/);
    }
    // Python-worker models are not affected.
    assert.equal((await inferOnce(stack.url, 'classifier')).status, 200);
    // A load while Triton is down fails with 503, and leaves the version loadable (not failed).
    const load = await admin<{ code: string }>(stack.url, 'POST', '/models/text_stats/versions/1/load');
    assert.equal(load.status, 503);
    assert.equal(load.body.code, 'UNAVAILABLE');
    const text = await admin<{ state: string; reason: string }>(stack.url, 'GET', '/models/text_stats/versions/1');
    assert.equal(text.body.state, 'unloaded');
    assert.match(text.body.reason, /circuit open/);

    // Triton restarts on the same ports with nothing loaded (explicit mode); the probe loads what is wanted.
    const restartedAt = performance.now();
    triton = await startTriton({ modelRepository: repo, httpPort, grpcPort });
    const tritonUpMs = performance.now() - restartedAt;
    let recovered = 0;
    await waitFor(
      'requests to succeed again',
      () => {
        void inferBinary(stack.url, 'tri_mlp', 'INPUT0', 1, 256, 4).then((r) => {
          if (r.status === 200 && recovered === 0) recovered = performance.now();
        });
        return recovered > 0;
      },
      60_000,
    );
    console.log(
      `      Triton killed: first request failed after ${firstMs.toFixed(0)} ms (3 attempts), then ${fastMs.toFixed(1)} ms per request while open; ` +
        `restarted Triton ready after ${tritonUpMs.toFixed(0)} ms, requests succeed ${(recovered - restartedAt - tritonUpMs).toFixed(0)} ms later`,
    );
    assert.ok(fastMs < 100, `fail-fast took ${fastMs} ms per request`);
    assert.deepEqual(await tritonReady('tri_mlp'), ['1']);
    assert.deepEqual(await tritonReady('tri_classifier'), ['1', '2']);
    const r = await inferBinary(stack.url, 'tri_classifier/versions/2', 'features', 2, 16, 9);
    assert.equal(r.status, 200);
    // The version the outage left unloaded loads on its next request.
    const res = await fetch(`${stack.url}/v2/models/text_stats/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: ['back'] }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(stack.triton!.endpointStates()[0]!.state, 'closed');
    assert.equal((await fetch(`${stack.url}/v2/models/tri_mlp/ready`)).status, 200);
  });
});
