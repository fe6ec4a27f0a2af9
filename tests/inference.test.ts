import assert from 'node:assert/strict';
import { features, binaryRequest, onnxOracle, parseBinaryResponse, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * A real request end to end: HTTP client → orchestrator → ZeroMQ → Python worker → ONNX Runtime (or a
 * Triton-style Python model) → back, compared with ONNX Runtime run directly in Python.
 */
describe('inference end to end (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(stack.url + path, {
      method: 'POST',
      body: Buffer.isBuffer(body) ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });

  it('answers server metadata, liveness and readiness', async () => {
    const meta = (await (await fetch(`${stack.url}/v2`)).json()) as { name: string; extensions: string[] };
    assert.equal(meta.name, 'inferneo');
    assert.ok(meta.extensions.includes('binary_tensor_data'));
    assert.equal((await fetch(`${stack.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 200);
  });

  it('describes models, versions and configs as Triton does', async () => {
    const meta = (await (await fetch(`${stack.url}/v2/models/classifier`)).json()) as Record<string, unknown>;
    assert.deepEqual(meta['versions'], ['1', '2']);
    assert.equal(meta['platform'], 'onnxruntime_onnx');
    assert.deepEqual(meta['inputs'], [{ name: 'features', datatype: 'FP32', shape: [-1, 16] }]);
    const v2 = (await (await fetch(`${stack.url}/v2/models/classifier/versions/2`)).json()) as Record<string, unknown>;
    assert.deepEqual(v2['versions'], ['2']);
    const config = (await (await fetch(`${stack.url}/v2/models/classifier/config`)).json()) as Record<string, unknown>;
    assert.equal(config['max_batch_size'], 64);
    assert.equal(config['name'], 'classifier');
    assert.equal((await fetch(`${stack.url}/v2/models/classifier/ready`)).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/models/classifier/versions/1/ready`)).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/models/text_stats/ready`)).status, 200);
  });

  for (const version of ['1', '2']) {
    it(`classifier v${version} with JSON tensors equals ONNX Runtime run directly`, async () => {
      const x = features(3 * 16, Number(version) * 7);
      const res = await post(`/v2/models/classifier/versions/${version}/infer`, {
        id: `json-${version}`,
        inputs: [{ name: 'features', datatype: 'FP32', shape: [3, 16], data: Array.from(x) }],
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { model_name: string; model_version: string; id: string; outputs: { name: string; datatype: string; shape: number[]; data: number[] }[] };
      assert.equal(body.model_name, 'classifier');
      assert.equal(body.model_version, version);
      assert.equal(body.id, `json-${version}`);
      const oracle = onnxOracle('classifier', version, { features: { dtype: '<f4', shape: [3, 16], data: Buffer.from(x.buffer) } });
      const probs = body.outputs.find((o) => o.name === 'probabilities')!;
      assert.deepEqual(probs.shape, [3, 3]);
      const expected = new Float32Array(new Uint8Array(oracle['probabilities']!.data).buffer);
      assert.deepEqual(Float32Array.from(probs.data), expected);
      const label = body.outputs.find((o) => o.name === 'label')!;
      assert.equal(label.datatype, 'INT64');
      assert.deepEqual(label.data, Array.from(new BigInt64Array(new Uint8Array(oracle['label']!.data).buffer), Number));
    });

    it(`classifier v${version} with binary tensors returns ONNX Runtime's exact bytes`, async () => {
      const x = features(5 * 16, 100 + Number(version));
      const data = Buffer.from(x.buffer);
      const { body, headers } = binaryRequest(
        { inputs: [{ name: 'features', datatype: 'FP32', shape: [5, 16], parameters: { binary_data_size: data.length } }], parameters: { binary_data_output: true } },
        data,
      );
      const res = await post(`/v2/models/classifier/versions/${version}/infer`, body, headers);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      const headerLength = Number(res.headers.get('inference-header-content-length'));
      const parsed = parseBinaryResponse(Buffer.from(await res.arrayBuffer()), headerLength);
      const oracle = onnxOracle('classifier', version, { features: { dtype: '<f4', shape: [5, 16], data } });
      assert.deepEqual(parsed.outputs.get('probabilities'), oracle['probabilities']!.data);
      assert.deepEqual(parsed.outputs.get('label'), oracle['label']!.data);
    });
  }

  it('gives different answers for the two versions, and the latest for an unversioned request', async () => {
    const x = Array.from(features(16, 5));
    const ask = async (path: string): Promise<{ version: string; probs: number[] }> => {
      const body = (await (await post(path, { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: x }], outputs: [{ name: 'probabilities' }] })).json()) as {
        model_version: string;
        outputs: { data: number[] }[];
      };
      assert.equal(body.outputs.length, 1);
      return { version: body.model_version, probs: body.outputs[0]!.data };
    };
    const v1 = await ask('/v2/models/classifier/versions/1/infer');
    const v2 = await ask('/v2/models/classifier/versions/2/infer');
    const latest = await ask('/v2/models/classifier/infer');
    assert.notDeepEqual(v1.probs, v2.probs);
    assert.equal(latest.version, '2');
    assert.deepEqual(latest.probs, v2.probs);
  });

  it('runs the Python model on BYTES tensors, JSON and binary', async () => {
    const texts = ['hello', 'Grüße, Welt', ''];
    const res = await post('/v2/models/text_stats/infer', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3, 1], data: texts }] });
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as { outputs: { name: string; datatype: string; data: unknown[] }[] };
    const upper = body.outputs.find((o) => o.name === 'UPPER')!;
    const length = body.outputs.find((o) => o.name === 'LENGTH')!;
    assert.equal(upper.datatype, 'BYTES');
    assert.deepEqual(upper.data, texts.map((t) => t.toUpperCase()));
    assert.deepEqual(length.data, texts.map((t) => [...t].length));

    const raw = Buffer.concat(texts.map((t) => {
      const b = Buffer.from(t);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    }));
    const { body: binBody, headers } = binaryRequest(
      { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3, 1], parameters: { binary_data_size: raw.length } }], outputs: [{ name: 'UPPER', parameters: { binary_data: true } }, { name: 'LENGTH' }] },
      raw,
    );
    const binRes = await post('/v2/models/text_stats/infer', binBody, headers);
    assert.equal(binRes.status, 200);
    const parsed = parseBinaryResponse(Buffer.from(await binRes.arrayBuffer()), Number(binRes.headers.get('inference-header-content-length')));
    const upperRaw = parsed.outputs.get('UPPER')!;
    const upperExpected = Buffer.concat(texts.map((t) => {
      const b = Buffer.from(t.toUpperCase());
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    }));
    assert.deepEqual(upperRaw, upperExpected);
  });

  it('fails only the bad row of a Python model call with a clear 400', async () => {
    const bad = Buffer.from([0xff, 0xfe]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(2);
    const raw = Buffer.concat([len, bad]);
    const { body, headers } = binaryRequest({ inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: raw.length } }] }, raw);
    const res = await post('/v2/models/text_stats/infer', body, headers);
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /UTF-8/i);
  });

  it('lists, unloads and reloads models through the repository API', async () => {
    const index = (await (await post('/v2/repository/index', {})).json()) as { name: string; version?: string; state: string }[];
    const row = (name: string, version: string): { state: string } | undefined => index.find((r) => r.name === name && r.version === version);
    assert.equal(row('classifier', '1')?.state, 'READY');
    assert.equal(row('text_stats', '1')?.state, 'READY');

    assert.equal((await post('/v2/repository/models/text_stats/unload', {})).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/models/text_stats/ready`)).status, 400);
    const afterUnload = (await (await post('/v2/repository/index', { ready: true })).json()) as { name: string }[];
    assert.ok(!afterUnload.some((r) => r.name === 'text_stats'));
    // Unloaded is not gone: the next request loads it again on demand (lazy loading).
    const lazy = await post('/v2/models/text_stats/infer', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: ['x'] }] });
    assert.equal(lazy.status, 200);
    assert.equal((await fetch(`${stack.url}/v2/models/text_stats/ready`)).status, 200);

    assert.equal((await post('/v2/repository/models/text_stats/unload', {})).status, 200);
    assert.equal((await post('/v2/repository/models/text_stats/load', {})).status, 200);
    const ok = await post('/v2/models/text_stats/infer', { inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: ['x'] }] });
    assert.equal(ok.status, 200);
  });
});
