import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { decodeBytesElements, encodeBytesElements } from '../orchestrator/src/protocol/bytes-elements.js';
import { inferenceClientConstructor } from '../orchestrator/src/protocol/grpc-proto.js';
import { admin, features, MODEL_REPOSITORY, onnxOracle, ROOT, startStack } from './support/stack.js';

/** The venv with NVIDIA's tritonclient (`npm test` sets it up; see scripts/lib/setup.mjs). */
const TRITON_PYTHON = path.join(ROOT, '.venv-triton', 'bin', 'python');

type Stack = Awaited<ReturnType<typeof startStack>>;

/** ModelInferResponse as the client decodes it (same proto options as the server: int64 as strings). */
interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, { bool_param?: boolean }>;
  outputs: { name: string; datatype: string; shape: string[] }[];
  raw_output_contents: Buffer[];
}

interface StreamResponse {
  error_message: string;
  infer_response: InferResponse | null;
}

type UnaryMethod = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, value?: unknown) => void) => grpc.ClientUnaryCall;

/**
 * Triton's gRPC protocol end to end: a @grpc/grpc-js client built from the same .proto files →
 * Inferneo's GRPCInferenceService → scheduler → real Python workers, compared with ONNX Runtime run
 * directly. Routing, batching, statistics and errors must behave as over HTTP.
 */
describe('gRPC data plane (real workers)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let repo: string;
  let client: grpc.Client;

  /** A copy of the classifier under another name, with its own scheduling settings (as in batching.test.ts). */
  const variant = (name: string, scheduling: string): void => {
    const dir = path.join(repo, name);
    mkdirSync(dir, { recursive: true });
    cpSync(path.join(MODEL_REPOSITORY, 'classifier', '1'), path.join(dir, '1'), { recursive: true });
    const config = readFileSync(path.join(MODEL_REPOSITORY, 'classifier', 'config.pbtxt'), 'utf8')
      .replace(/^name:\s*"classifier"/m, `name: "${name}"`)
      .replace(/version_policy[^\n]*\n/, '')
      .replace(/instance_group \[[\s\S]*?\n\]\n/, '')
      .replace(/dynamic_batching \{[\s\S]*?\n\}\n/, '')
      .replace(/model_warmup \[[\s\S]*?\n\]\n/, '');
    writeFileSync(path.join(dir, 'config.pbtxt'), `${config}\n${scheduling}\n`);
  };

  before(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'inferneo-grpc-'));
    for (const model of ['classifier', 'mlp_tiny', 'text_stats']) cpSync(path.join(MODEL_REPOSITORY, model), path.join(repo, model), { recursive: true });
    variant('bounded', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { default_queue_policy { max_queue_size: 2 } }');
    variant('patient', 'instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { max_queue_delay_microseconds: 1500000 preferred_batch_size: [ 64 ] }');
    stack = await startStack((c) => {
      c.workers.spawn = 2;
      c.model_repository = repo;
      c.http.max_request_bytes = 1024 * 1024;
    });
    const Client = inferenceClientConstructor();
    client = new Client(`127.0.0.1:${stack.grpcPort}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await stack?.close();
    if (repo !== undefined) rmSync(repo, { recursive: true, force: true });
  });

  /** Calls a unary RPC; resolves with the response and the server's initial metadata. */
  const call = <T = Record<string, unknown>>(method: string, request: object, metadata: Record<string, string> = {}, options: grpc.CallOptions = {}): Promise<{ response: T; headers: grpc.Metadata }> => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return new Promise((resolve, reject) => {
      let headers = new grpc.Metadata();
      const fn = (client as unknown as Record<string, UnaryMethod>)[method]!.bind(client);
      const c = fn(request, md, options, (err, value) => (err !== null ? reject(err) : resolve({ response: value as T, headers })));
      c.on('metadata', (m: grpc.Metadata) => (headers = m));
    });
  };

  /** Expects a unary RPC to fail with `code`, its message matching `message`. */
  const fails = async (method: string, request: object, code: grpc.status, message: RegExp, metadata: Record<string, string> = {}): Promise<void> => {
    await assert.rejects(call(method, request, metadata), (err: grpc.ServiceError) => {
      assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
      assert.match(err.details, message);
      return true;
    });
  };

  const classifierRequest = (rows: number, seed: number, extra: Record<string, unknown> = {}): { request: Record<string, unknown>; data: Buffer } => {
    const data = Buffer.from(features(rows * 16, seed).buffer);
    return {
      data,
      request: { model_name: 'classifier', inputs: [{ name: 'features', datatype: 'FP32', shape: [rows, 16] }], raw_input_contents: [data], ...extra },
    };
  };

  it('answers ServerLive, ServerReady and ServerMetadata', async () => {
    assert.deepEqual((await call('ServerLive', {})).response, { live: true });
    assert.deepEqual((await call('ServerReady', {})).response, { ready: true });
    const meta = (await call<{ name: string; version: string; extensions: string[] }>('ServerMetadata', {})).response;
    assert.equal(meta.name, 'inferneo');
    assert.ok(meta.extensions.includes('model_repository') && meta.extensions.includes('statistics'));
  });

  it('describes models and their readiness as Triton does', async () => {
    const meta = (await call('ModelMetadata', { name: 'classifier' })).response;
    assert.deepEqual(meta, {
      name: 'classifier',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: ['-1', '16'] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: ['-1', '3'] },
        { name: 'label', datatype: 'INT64', shape: ['-1', '1'] },
      ],
    });
    assert.deepEqual((await call('ModelMetadata', { name: 'classifier', version: '2' })).response['versions'], ['2']);
    assert.equal((await call('ModelMetadata', { name: 'text_stats' })).response['platform'], 'python');
    assert.deepEqual((await call('ModelReady', { name: 'classifier' })).response, { ready: true });
    assert.deepEqual((await call('ModelReady', { name: 'classifier', version: '1' })).response, { ready: true });
    // Triton's gRPC ModelReady says false, not an error, for a model it does not know.
    assert.deepEqual((await call('ModelReady', { name: 'no_such_model' })).response, { ready: false });
    await fails('ModelMetadata', { name: 'no_such_model' }, grpc.status.NOT_FOUND, /no_such_model/);
    await fails('ModelMetadata', { name: 'classifier', version: '9' }, grpc.status.NOT_FOUND, /version/);
    await fails('ModelMetadata', {}, grpc.status.INVALID_ARGUMENT, /'name' is required/);
  });

  it('returns the model configuration as Triton ModelConfig messages', async () => {
    const { config } = (await call<{ config: Record<string, unknown> }>('ModelConfig', { name: 'classifier' })).response;
    assert.equal(config['name'], 'classifier');
    assert.equal(config['platform'], 'onnxruntime_onnx');
    assert.equal(config['backend'], 'onnxruntime');
    assert.equal(config['max_batch_size'], 64);
    assert.deepEqual(config['version_policy'], { all: {}, policy_choice: 'all' });
    const input = (config['input'] as Record<string, unknown>[])[0]!;
    assert.equal(input['name'], 'features');
    assert.equal(input['data_type'], 'TYPE_FP32');
    assert.deepEqual(input['dims'], ['16']);
    assert.deepEqual((config['output'] as Record<string, unknown>[]).map((o) => [o['name'], o['data_type']]), [['probabilities', 'TYPE_FP32'], ['label', 'TYPE_INT64']]);
    assert.deepEqual((config['instance_group'] as Record<string, unknown>[]).map((g) => [g['kind'], g['count']]), [['KIND_CPU', 2]]);
    assert.equal((config['dynamic_batching'] as Record<string, unknown>)['max_queue_delay_microseconds'], '500');
    assert.equal(config['scheduling_choice'], 'dynamic_batching');
    const warmup = (config['model_warmup'] as { name: string; batch_size: number; inputs: Record<string, { data_type: string; zero_data?: boolean }> }[])[0]!;
    assert.equal(warmup.name, 'zeros_batch_4');
    assert.equal(warmup.inputs['features']!.data_type, 'TYPE_FP32');
    assert.equal(warmup.inputs['features']!.zero_data, true);
    const bounded = (await call<{ config: { dynamic_batching: { default_queue_policy: { max_queue_size: number } } } }>('ModelConfig', { name: 'bounded' })).response;
    assert.equal(bounded.config.dynamic_batching.default_queue_policy.max_queue_size, 2);
    await fails('ModelConfig', { name: 'nope' }, grpc.status.NOT_FOUND, /nope/);
  });

  for (const version of ['1', '2']) {
    it(`classifier v${version} with raw_input_contents returns ONNX Runtime's exact bytes, its id and version`, async () => {
      const { request, data } = classifierRequest(5, 300 + Number(version), { model_version: version, id: `grpc-${version}` });
      const { response, headers } = await call<InferResponse>('ModelInfer', request);
      assert.equal(response.model_name, 'classifier');
      assert.equal(response.model_version, version);
      assert.equal(response.id, `grpc-${version}`);
      assert.deepEqual(headers.get('x-inferneo-arm'), [`classifier-v${version}`]);
      const oracle = onnxOracle('classifier', version, { features: { dtype: '<f4', shape: [5, 16], data } });
      assert.deepEqual(response.outputs.map((o) => [o.name, o.datatype, o.shape]), [
        ['probabilities', 'FP32', ['5', '3']],
        ['label', 'INT64', ['5', '1']],
      ]);
      assert.equal(response.raw_output_contents.length, 2);
      assert.deepEqual(response.raw_output_contents[0], oracle['probabilities']!.data);
      assert.deepEqual(response.raw_output_contents[1], oracle['label']!.data);
    });
  }

  it('mlp_tiny with typed fp32_contents equals ONNX Runtime, and answers only the requested output', async () => {
    const x = features(3 * 256, 77);
    const { response } = await call<InferResponse>('ModelInfer', {
      model_name: 'mlp_tiny',
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [3, 256], contents: { fp32_contents: Array.from(x) } }],
      outputs: [{ name: 'OUTPUT0' }],
    });
    assert.equal(response.model_version, '1');
    assert.deepEqual(response.outputs.map((o) => [o.name, o.shape]), [['OUTPUT0', ['3', '10']]]);
    const oracle = onnxOracle('mlp_tiny', '1', { INPUT0: { dtype: '<f4', shape: [3, 256], data: Buffer.from(x.buffer) } });
    const got = new Float32Array(new Uint8Array(response.raw_output_contents[0]!).buffer);
    const want = new Float32Array(new Uint8Array(oracle['OUTPUT0']!.data).buffer);
    assert.equal(got.length, 30);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)), `element ${i}: ${v} vs ${want[i]}`));
  });

  it('text_stats takes BYTES as bytes_contents or raw length-prefixed elements and answers raw BYTES', async () => {
    const words = ['hello', 'wörld', ''];
    const typed = (
      await call<InferResponse>('ModelInfer', {
        model_name: 'text_stats',
        inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3, 1], contents: { bytes_contents: words.map((w) => Buffer.from(w)) } }],
      })
    ).response;
    const raw = (
      await call<InferResponse>('ModelInfer', {
        model_name: 'text_stats',
        inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [3, 1] }],
        raw_input_contents: [encodeBytesElements(words)],
      })
    ).response;
    for (const response of [typed, raw]) {
      const byName = new Map(response.outputs.map((o, i) => [o.name, { ...o, data: response.raw_output_contents[i]! }]));
      assert.deepEqual(decodeBytesElements(byName.get('UPPER')!.data).map((b) => b.toString()), ['HELLO', 'WÖRLD', '']);
      assert.equal(byName.get('LENGTH')!.datatype, 'INT32');
      assert.deepEqual(Array.from(new Int32Array(new Uint8Array(byName.get('LENGTH')!.data).buffer)), [5, 5, 0]);
    }
  });

  it('streams: every request answered with its id, an error in the middle does not end the stream', async () => {
    const stream = (client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, StreamResponse> }).ModelStreamInfer();
    const replies: StreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: StreamResponse) => replies.push(r));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const inputs = [0, 1, 2, 3].map((i) => classifierRequest(1, 500 + i, { id: `s${i}`, model_version: '1' }));
    stream.write(inputs[0]!.request);
    stream.write({ ...inputs[1]!.request, raw_input_contents: [inputs[1]!.data.subarray(4)] });
    stream.write(inputs[2]!.request);
    stream.write({ ...inputs[3]!.request, model_name: 'no_such_model' });
    stream.end();
    await ended;
    assert.equal(replies.length, 4);
    const byId = new Map(replies.map((r) => [r.infer_response?.id, r]));
    assert.match(byId.get('s1')!.error_message, /input 'features': FP32 shape \[1,16\] needs 64 bytes, raw_input_contents\[0\] has 60/);
    assert.match(byId.get('s3')!.error_message, /no_such_model/);
    for (const id of ['s0', 's2']) {
      const r = byId.get(id)!;
      assert.equal(r.error_message, '');
      assert.equal(r.infer_response!.model_version, '1');
      assert.equal(r.infer_response!.parameters['triton_final_response']?.bool_param, true);
      const oracle = onnxOracle('classifier', '1', { features: { dtype: '<f4', shape: [1, 16], data: inputs[Number(id.slice(1))]!.data } });
      assert.deepEqual(r.infer_response!.raw_output_contents[0], oracle['probabilities']!.data);
    }
  });

  it('streams many requests concurrently, batching them', async () => {
    type Stats = { model_stats: { execution_count: string; inference_count: string }[] };
    const before = (await call<Stats>('ModelStatistics', { name: 'mlp_tiny' })).response.model_stats[0]!;
    const stream = (client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, StreamResponse> }).ModelStreamInfer();
    const replies: StreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: StreamResponse) => replies.push(r));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    for (let i = 0; i < 40; i++) {
      stream.write({ id: `b${i}`, model_name: 'mlp_tiny', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 256] }], raw_input_contents: [Buffer.from(features(256, i).buffer)] });
    }
    stream.end();
    await ended;
    assert.equal(replies.length, 40);
    assert.deepEqual(replies.filter((r) => r.error_message !== ''), []);
    assert.deepEqual(new Set(replies.map((r) => r.infer_response!.id)).size, 40);
    const after = (await call<Stats>('ModelStatistics', { name: 'mlp_tiny' })).response.model_stats[0]!;
    assert.equal(Number(after.inference_count) - Number(before.inference_count), 40);
    const executions = Number(after.execution_count) - Number(before.execution_count);
    assert.ok(executions < 40, `40 streamed requests in ${executions} executions`);
  });

  it('applies routes, sticky keys and forced arms from gRPC metadata, and counts per arm', async () => {
    const put = await admin(stack.url, 'PUT', '/routes/grpc-route', {
      sticky: true,
      arms: [
        { name: 'a', model: 'classifier', version: '1', weight: 50 },
        { name: 'b', model: 'classifier', version: '2', weight: 50 },
      ],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const viaRoute = async (md: Record<string, string>): Promise<{ arm: string; version: string }> => {
      const { response, headers } = await call<InferResponse>('ModelInfer', classifierRequest(1, 1, { model_name: 'grpc-route' }).request, md);
      return { arm: String(headers.get('x-inferneo-arm')[0]), version: response.model_version };
    };
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const first = await Promise.all(keys.map((k) => viaRoute({ 'x-inferneo-route-key': k })));
    const again = await Promise.all(keys.map((k) => viaRoute({ 'x-inferneo-route-key': k })));
    assert.deepEqual(again, first);
    assert.ok(first.some((r) => r.arm === 'a') && first.some((r) => r.arm === 'b'), 'both arms get keys');
    for (const r of first) assert.equal(r.version, r.arm === 'a' ? '1' : '2');
    assert.deepEqual(await viaRoute({ 'x-inferneo-arm': 'b' }), { arm: 'b', version: '2' });
    await fails('ModelInfer', classifierRequest(1, 1, { model_name: 'grpc-route' }).request, grpc.status.INVALID_ARGUMENT, /x-inferneo-arm names arm 'zzz'/, { 'x-inferneo-arm': 'zzz' });
    // The route answers metadata, config and readiness under its own name.
    assert.equal((await call('ModelMetadata', { name: 'grpc-route' })).response['name'], 'grpc-route');
    assert.deepEqual((await call('ModelReady', { name: 'grpc-route' })).response, { ready: true });
    const stats = await admin<{ arms: { arm: string; requests: number }[] }>(stack.url, 'GET', '/routes/grpc-route/stats');
    const total = stats.body.arms.reduce((n, a) => n + a.requests, 0);
    assert.equal(total, 81, JSON.stringify(stats.body));
  });

  it('refuses bad requests with INVALID_ARGUMENT or NOT_FOUND naming the problem', async () => {
    const { request, data } = classifierRequest(2, 9);
    await fails('ModelInfer', { ...request, model_name: 'no_such_model' }, grpc.status.NOT_FOUND, /no_such_model/);
    await fails('ModelInfer', { ...request, model_version: '7' }, grpc.status.NOT_FOUND, /version/);
    await fails('ModelInfer', { ...request, model_name: '' }, grpc.status.INVALID_ARGUMENT, /'model_name' is required/);
    await fails('ModelInfer', { ...request, raw_input_contents: [data.subarray(0, 100)] }, grpc.status.INVALID_ARGUMENT, /needs 128 bytes, raw_input_contents\[0\] has 100/);
    await fails('ModelInfer', { ...request, raw_input_contents: [data, data] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents has 2 entries but the request has 1 inputs/);
    await fails('ModelInfer', { ...request, inputs: [], raw_input_contents: [] }, grpc.status.INVALID_ARGUMENT, /at least one input/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'other', datatype: 'FP32', shape: [2, 16] }] }, grpc.status.INVALID_ARGUMENT, /unexpected input 'other'/);
    await fails('ModelInfer', { model_name: 'classifier', inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 16] }] }, grpc.status.INVALID_ARGUMENT, /needs 32 elements, got no data/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'features', datatype: 'FP64', shape: [1, 16] }] }, grpc.status.INVALID_ARGUMENT, /datatype FP64 does not match the model's FP32/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'features', datatype: 'FLOAT', shape: [2, 16] }] }, grpc.status.INVALID_ARGUMENT, /unknown datatype "FLOAT"/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'features', datatype: 'FP32', shape: [4, 8] }] }, grpc.status.INVALID_ARGUMENT, /shape \[4,8\] does not match the model's \[-1,16\]/);
    await fails('ModelInfer', { model_name: 'classifier', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], contents: { int_contents: Array(16).fill(1) } }] }, grpc.status.INVALID_ARGUMENT, /belong in contents\.fp32_contents, not contents\.int_contents/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 16], contents: { fp32_contents: [1] } }] }, grpc.status.INVALID_ARGUMENT, /typed contents although the request uses raw_input_contents/);
    await fails('ModelInfer', { ...request, outputs: [{ name: 'nope' }] }, grpc.status.INVALID_ARGUMENT, /unknown output 'nope'/);
    await fails('ModelInfer', { ...request, parameters: { priority: { string_param: 'high' } } }, grpc.status.INVALID_ARGUMENT, /'priority' must be a non-negative integer/);
    await fails('ModelInfer', { ...request, inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 16], parameters: { shared_memory_region: { string_param: 'r' } } }] }, grpc.status.UNIMPLEMENTED, /shared memory is not supported/);
    // Larger than http.max_request_bytes (1 MiB here): refused by the transport.
    const big = Buffer.alloc(2 * 1024 * 1024);
    await fails('ModelInfer', { model_name: 'classifier', inputs: [{ name: 'features', datatype: 'FP32', shape: [big.length / 64, 16] }], raw_input_contents: [big] }, grpc.status.RESOURCE_EXHAUSTED, /larger than max/);
    // After all that, the server still serves.
    assert.equal((await call<InferResponse>('ModelInfer', request)).response.outputs.length, 2);
    await fails('SystemSharedMemoryStatus', {}, grpc.status.UNIMPLEMENTED, /not supported by Inferneo/);
    await fails('CudaSharedMemoryRegister', {}, grpc.status.UNIMPLEMENTED, /not supported by Inferneo/);
  });

  it('answers RESOURCE_EXHAUSTED when the queue is full, and serves the rest', async () => {
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => call<InferResponse>('ModelInfer', { ...classifierRequest(1, i).request, model_name: 'bounded' })));
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as grpc.ServiceError);
    assert.ok(refused.length > 0, 'some requests found the queue full');
    assert.ok(results.some((r) => r.status === 'fulfilled'), 'some requests were served');
    for (const err of refused) {
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.details);
      assert.match(err.details, /the queue of model 'bounded' is full/);
      assert.deepEqual(err.metadata.get('inferneo-error-code'), ['RESOURCE_EXHAUSTED']);
    }
  });

  it('takes priority and timeout parameters as Triton does', async () => {
    const { response } = await call<InferResponse>('ModelInfer', { ...classifierRequest(1, 3).request, parameters: { priority: { uint64_param: 0 }, timeout: { int64_param: 60_000_000 } } });
    assert.equal(response.outputs.length, 2);
  });

  it('cancels a queued request when the call is cancelled or its deadline passes; it is never computed', async () => {
    const { request } = classifierRequest(1, 2, { model_name: 'patient' });
    await assert.rejects(call('ModelInfer', request, {}, { deadline: Date.now() + 200 }), (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED);
    const md = new grpc.Metadata();
    const cancelled = new Promise<grpc.ServiceError>((resolve) => {
      const c = (client as unknown as Record<string, UnaryMethod>)['ModelInfer']!.call(client, request, md, {}, (err) => resolve(err!));
      setTimeout(() => c.cancel(), 200);
    });
    assert.equal((await cancelled).code, grpc.status.CANCELLED);
    await new Promise((r) => setTimeout(r, 1700));
    const stats = (await call<{ model_stats: { execution_count: string; inference_count: string }[] }>('ModelStatistics', { name: 'patient' })).response.model_stats[0]!;
    assert.equal(stats.execution_count, '0', 'nothing was executed');
    assert.match(await (await fetch(`${stack.url}/metrics`)).text(), /nv_inference_request_failure\{model="patient",version="1",reason="CANCELED"\} 2/);
  });

  it('reports Triton statistics for gRPC and HTTP requests alike', async () => {
    const before = (await call<{ model_stats: { name: string; version: string; inference_count: string; execution_count: string; inference_stats: { success: { count: string; ns: string } } }[] }>('ModelStatistics', { name: 'classifier', version: '1' })).response.model_stats;
    assert.equal(before.length, 1);
    await call('ModelInfer', classifierRequest(4, 11, { model_version: '1' }).request);
    const after = (await call<{ model_stats: { inference_count: string; inference_stats: { success: { count: string; ns: string } } }[] }>('ModelStatistics', { name: 'classifier', version: '1' })).response.model_stats[0]!;
    assert.equal(Number(after.inference_count) - Number(before[0]!.inference_count), 4);
    assert.ok(Number(after.inference_stats.success.ns) > 0);
    const http = (await (await fetch(`${stack.url}/v2/models/classifier/versions/1/stats`)).json()) as { model_stats: { inference_count: number }[] };
    assert.equal(http.model_stats[0]!.inference_count, Number(after.inference_count));
    const all = (await call<{ model_stats: { name: string }[] }>('ModelStatistics', {})).response.model_stats;
    assert.ok(all.some((s) => s.name === 'mlp_tiny') && all.some((s) => s.name === 'text_stats'));
    await fails('ModelStatistics', { name: 'nope' }, grpc.status.NOT_FOUND, /nope/);
  });

  it("NVIDIA's tritonclient.grpc works unchanged (examples/grpc_inference.py)", async function () {
    if (!existsSync(TRITON_PYTHON)) this.skip();
    // Run asynchronously: the server lives in this process and must keep answering.
    const { stdout } = await promisify(execFile)(TRITON_PYTHON, [path.join(ROOT, 'examples', 'grpc_inference.py'), '--url', `127.0.0.1:${stack.grpcPort}`]);
    assert.match(stdout, /server: inferneo 0\.1\.0, ready: True/);
    assert.match(stdout, /classifier versions \['1', '2'\], input features \[-1, 16\]/);
    assert.match(stdout, /classifier v1 \(id 1\): labels \[\d, \d, \d, \d\], \(4, 3\)/);
    assert.match(stdout, /classifier v2 \(id 2\): labels \[\d, \d, \d, \d\], \(4, 3\)/);
    assert.match(stdout, /text_stats: \['HELLO INFERNEO', 'GRÜSSE'\], lengths \[14, 5\]/);
    assert.match(stdout, /stream: answered \['s0', 's1', 's2'\]/);
  });

  it('indexes the repository and loads and unloads models', async () => {
    const index = (await call<{ models: { name: string; version: string; state: string }[] }>('RepositoryIndex', {})).response.models;
    assert.ok(index.some((m) => m.name === 'classifier' && m.version === '2' && m.state === 'READY'), JSON.stringify(index));
    await call('RepositoryModelUnload', { model_name: 'mlp_tiny' });
    assert.deepEqual((await call('ModelReady', { name: 'mlp_tiny' })).response, { ready: false });
    const ready = (await call<{ models: { name: string }[] }>('RepositoryIndex', { ready: true })).response.models;
    assert.ok(!ready.some((m) => m.name === 'mlp_tiny'));
    await call('RepositoryModelLoad', { model_name: 'mlp_tiny' });
    assert.deepEqual((await call('ModelReady', { name: 'mlp_tiny' })).response, { ready: true });
    await fails('RepositoryModelLoad', { model_name: 'mlp_tiny', parameters: { config: { string_param: '{}' } } }, grpc.status.INVALID_ARGUMENT, /config or file override is not supported/);
    await fails('RepositoryModelLoad', { model_name: 'no_such_model' }, grpc.status.NOT_FOUND, /no_such_model/);
    await fails('RepositoryModelUnload', {}, grpc.status.INVALID_ARGUMENT, /'model_name' is required/);
  });
});
