import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { decodeBytesElements, encodeBytesElements } from '../orchestrator/src/protocol/bytes-elements.js';
import { inferenceClientConstructor } from '../orchestrator/src/protocol/grpc-proto.js';
import { metric, workerInferences } from './support/llm.js';
import { admin, startStack, waitFor } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface StreamResponse {
  error_message: string;
  infer_response: {
    model_name: string;
    model_version: string;
    id: string;
    parameters: Record<string, { bool_param?: boolean }>;
    outputs: { name: string; datatype: string }[];
    raw_output_contents: Buffer[];
  } | null;
}

type Duplex = grpc.ClientDuplexStream<object, StreamResponse>;

/** A ModelInferRequest to smollm2 as tritonclient builds it: BYTES/BOOL inputs in raw_input_contents. */
function request(id: string, prompt: string, options: { stream?: boolean; exclude?: boolean; sampling?: object; parameters?: object; model?: string } = {}): object {
  const inputs: { name: string; datatype: string; shape: number[] }[] = [{ name: 'text_input', datatype: 'BYTES', shape: [1] }];
  const raw = [encodeBytesElements([prompt])];
  if (options.stream !== undefined) {
    inputs.push({ name: 'stream', datatype: 'BOOL', shape: [1] });
    raw.push(Buffer.from([options.stream ? 1 : 0]));
  }
  if (options.exclude !== undefined) {
    inputs.push({ name: 'exclude_input_in_output', datatype: 'BOOL', shape: [1] });
    raw.push(Buffer.from([options.exclude ? 1 : 0]));
  }
  if (options.sampling !== undefined) {
    inputs.push({ name: 'sampling_parameters', datatype: 'BYTES', shape: [1] });
    raw.push(encodeBytesElements([JSON.stringify(options.sampling)]));
  }
  return { model_name: options.model ?? 'smollm2', id, inputs, outputs: [{ name: 'text_output' }], raw_input_contents: raw, parameters: options.parameters ?? {} };
}

const text = (r: StreamResponse): string => (r.infer_response?.raw_output_contents ?? []).map((b) => decodeBytesElements(b, 'text_output')[0]!.toString()).join('');
const final = (r: StreamResponse): boolean => r.infer_response?.parameters['triton_final_response']?.bool_param === true;

/**
 * Decoupled models over gRPC ModelStreamInfer, as Triton serves its vLLM backend: a @grpc/grpc-js
 * client built from the same .proto files → Inferneo → real workers running SmolLM2 (llama.cpp).
 * What streams must be what HTTP generate answers for the same prompt and parameters.
 */
describe('gRPC ModelStreamInfer on an LLM (real workers, SmolLM2)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let client: grpc.Client;

  before(async () => {
    stack = await startStack();
    client = new (inferenceClientConstructor())(`127.0.0.1:${stack.grpcPort}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await stack?.close();
  });

  const open = (metadata: Record<string, string> = {}): Duplex => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return (client as unknown as { ModelStreamInfer: (md: grpc.Metadata) => Duplex }).ModelStreamInfer(md);
  };

  /** Sends the requests on one stream, half-closes, and returns every response once the stream ends. */
  const exchange = async (requests: object[], metadata: Record<string, string> = {}): Promise<StreamResponse[]> => {
    const call = open(metadata);
    const replies: StreamResponse[] = [];
    call.on('data', (r: StreamResponse) => replies.push(r));
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (const r of requests) call.write(r);
    call.end();
    await ended;
    return replies;
  };

  const generate = async (body: object): Promise<string> => {
    const res = await fetch(`${stack.url}/v2/models/smollm2/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    return ((await res.json()) as { text_output: string }).text_output;
  };

  it('streams the same text as HTTP generate, one response per piece, the last one final', async () => {
    const prompt = 'The capital of France is';
    const expected = await generate({ text_input: prompt, exclude_input_in_output: true, parameters: { max_tokens: 8, temperature: 0 } });
    const replies = await exchange([request('s1', prompt, { stream: true, parameters: { max_tokens: { int64_param: 8 }, temperature: { double_param: 0 } } })]);
    assert.ok(replies.length >= 3, `only ${replies.length} responses`);
    for (const r of replies) {
      assert.equal(r.error_message, '');
      assert.equal(r.infer_response!.model_name, 'smollm2');
      assert.equal(r.infer_response!.model_version, '2');
      assert.equal(r.infer_response!.id, 's1');
      assert.deepEqual(
        r.infer_response!.outputs.map((o) => [o.name, o.datatype]),
        [['text_output', 'BYTES']],
      );
    }
    assert.deepEqual(
      replies.map(final),
      replies.map((_r, i) => i === replies.length - 1),
    );
    assert.equal(replies.map(text).join(''), expected);
    assert.match(expected, /^ Paris/);
  });

  it('ends with an empty final response when asked, and answers stream=false with the whole text', async () => {
    const prompt = 'The capital of France is';
    const sampling = { max_tokens: 4, temperature: 0 };
    const replies = await exchange([
      request('empty-final', prompt, { stream: true, sampling, parameters: { triton_enable_empty_final_response: { bool_param: true } } }),
      request('whole', prompt, { stream: false, sampling }),
      request('excluded', prompt, { exclude: true, sampling }),
    ]);
    const of = (id: string): StreamResponse[] => replies.filter((r) => r.infer_response?.id === id);
    const streamed = of('empty-final');
    assert.ok(streamed.length >= 3);
    assert.deepEqual(streamed.map(final), [...streamed.slice(1).map(() => false), true]);
    assert.deepEqual(streamed.at(-1)!.infer_response!.outputs, []);
    const pieces = streamed.map(text).join('');
    const whole = of('whole');
    assert.equal(whole.length, 1);
    assert.ok(final(whole[0]!));
    assert.equal(text(whole[0]!), prompt + pieces);
    assert.equal(text(of('excluded')[0]!), pieces);
    assert.equal(pieces, await generate({ text_input: prompt, exclude_input_in_output: true, sampling_parameters: JSON.stringify(sampling) }));
  });

  it('answers a bad request in the stream, naming the field, while the others go on; ModelInfer refuses the model', async () => {
    const call = open();
    const replies: StreamResponse[] = [];
    call.on('data', (r: StreamResponse) => replies.push(r));
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write(request('long', 'Once upon a time', { stream: true, sampling: { max_tokens: 24, ignore_eos: true, temperature: 0 } }));
    await new Promise((r) => setTimeout(r, 200));
    call.write(request('bad', 'x', { parameters: { max_tokens: { int64_param: 0 } } }));
    call.write(request('unknown', 'x', { model: 'no-such-model' }));
    call.write({ ...request('wrong', 'x'), inputs: [{ name: 'text_input', datatype: 'INT32', shape: [1] }], raw_input_contents: [Buffer.alloc(4)] });
    call.end();
    await ended;
    const errors = Object.fromEntries(replies.filter((r) => r.error_message !== '').map((r) => [r.infer_response!.id, r.error_message]));
    assert.match(errors['bad']!, /^max_tokens: must be at least 1/);
    assert.match(errors['unknown']!, /no-such-model/);
    assert.match(errors['wrong']!, /^text_input: input 'text_input' must be BYTES, got INT32/);
    const long = replies.filter((r) => r.infer_response?.id === 'long');
    assert.equal(long.length, 24);
    assert.ok(long.every((r) => r.error_message === ''));
    assert.ok(final(long.at(-1)!));

    const unary = await new Promise<grpc.ServiceError | null>((resolve) =>
      (client as unknown as { ModelInfer: (r: object, cb: (err: grpc.ServiceError | null) => void) => void }).ModelInfer(request('unary', 'x'), resolve),
    );
    assert.equal(unary?.code, grpc.status.UNIMPLEMENTED);
    assert.match(unary.details, /ModelInfer RPC doesn't support models with decoupled transaction policy.*use ModelStreamInfer/);
  });

  it('serves a route: sticky key and forced arm from metadata, per-arm statistics', async () => {
    const put = await admin(stack.url, 'PUT', '/routes/grpc-chat', {
      arms: [
        { name: 'one', model: 'smollm2', version: '1', weight: 50 },
        { name: 'two', model: 'smollm2', version: '2', weight: 50 },
      ],
      sticky: true,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const ask = async (metadata: Record<string, string>): Promise<string> =>
      (await exchange([request('r', 'Hi', { model: 'grpc-chat', sampling: { max_tokens: 1 } })], metadata))[0]!.infer_response!.model_version;
    assert.equal(await ask({ 'x-inferneo-arm': 'one' }), '1');
    assert.equal(await ask({ 'x-inferneo-arm': 'two' }), '2');
    const keyed = await ask({ 'x-inferneo-route-key': 'user-7' });
    for (let i = 0; i < 3; i++) assert.equal(await ask({ 'x-inferneo-route-key': 'user-7' }), keyed);
    const stats = await admin<{ arms: { arm: string; requests: number }[] }>(stack.url, 'GET', '/routes/grpc-chat/stats');
    assert.equal(
      stats.body.arms.reduce((n, a) => n + a.requests, 0),
      6,
    );
    assert.equal((await admin(stack.url, 'DELETE', '/routes/grpc-chat')).status, 200);
  });

  it('stops the generation on the worker when the stream is cancelled', async () => {
    const before = await workerInferences(stack);
    const call = open();
    const closed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    let received = 0;
    const five = new Promise<void>((resolve) =>
      call.on('data', () => {
        if (++received === 5) resolve();
      }),
    );
    call.write(request('endless', 'Once upon a time', { stream: true, sampling: { max_tokens: 1000, ignore_eos: true } }));
    await five;
    const running = metric(await (await fetch(`${stack.url}/metrics`)).text(), 'inferneo_num_requests_running', 'model="smollm2",version="2"');
    assert.equal(running, 1);
    const cancelled = Date.now();
    call.cancel();
    assert.equal((await closed).code, grpc.status.CANCELLED);
    let after = before;
    while (after === before && Date.now() - cancelled < 5000) {
      await new Promise((r) => setTimeout(r, 50));
      after = await workerInferences(stack);
    }
    assert.equal(after, before + 1, 'the worker did not end the sequence');
    assert.ok(Date.now() - cancelled < 3000, `the worker took ${Date.now() - cancelled} ms to stop`);
    await waitFor('no request in flight', () => stack.pool.sessions().every((s) => s.inflight === 0), 5000);
    assert.equal(metric(await (await fetch(`${stack.url}/metrics`)).text(), 'inferneo_num_requests_running', 'model="smollm2",version="2"'), 0);
  });
});
