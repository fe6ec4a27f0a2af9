import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { GenerateRequest, GenerationEvent } from '../src/backends/generation.js';
import { type InferneoError, ResourceExhaustedError } from '../src/errors.js';
import type { LlmService } from '../src/llm/llm-service.js';
import { encodeBytesElements } from '../src/protocol/bytes-elements.js';
import { inferenceClientConstructor } from '../src/protocol/grpc-proto.js';
import type { InferRequest } from '../src/protocol/infer-request.js';
import type { Tensor } from '../src/protocol/tensor.js';
import type { Target } from '../src/routing/router.js';
import type { CancelSignal } from '../src/scheduling/cancel-signal.js';
import { GrpcServer } from '../src/server/grpc-server.js';
import type { InferenceService } from '../src/server/inference-service.js';

/**
 * The gRPC adapter alone, over a stub InferenceService: lifecycle, INTERNAL errors reported to the
 * log hook, cancellation reaching the service, shutdown of calls that never finish. Behaviour with
 * the real service is covered by tests/grpc.test.ts.
 */

type UnaryMethod = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, value?: unknown) => void) => grpc.ClientUnaryCall;

class StubService {
  /** What `infer` does; by default it waits for cancellation and reports it. */
  infer: (target: Target, request: InferRequest, signal?: CancelSignal) => Promise<Tensor[]> = (_t, _r, signal) =>
    new Promise((_resolve, reject) => {
      signal?.onCancel(() => {
        this.cancelled++;
        reject(new Error('cancelled'));
      });
    });
  cancelled = 0;
  isLive = (): boolean => true;
  isReady = (): boolean => false;
  isModelReady = (): boolean => {
    throw new Error('boom');
  };
  serverMetadata = (): never => {
    throw new Error('metadata bug');
  };
  resolve = (name: string, version: string | undefined): Target => ({ model: name, version: version ?? '1' });
}

/** The LlmService as the adapter sees it: model `llm` generates text, by the script in `pieces`. */
class StubLlm {
  pieces: string[] = [' Paris', '.', ''];
  /** Throw this after the pieces instead of finishing. */
  failAfter: Error | undefined;
  requests: GenerateRequest[] = [];
  cancelled = 0;
  isLlm = (model: string): boolean => model === 'llm';
  generate = async function* (this: StubLlm, _target: Target, request: GenerateRequest, signal?: CancelSignal): AsyncGenerator<GenerationEvent> {
    this.requests.push(request);
    if (request.prompt === 'endless') {
      await new Promise<void>((resolve) => signal?.onCancel(() => resolve()));
      this.cancelled++;
      throw new Error('cancelled');
    }
    for (const text of this.pieces) yield { type: 'delta', text, tokens: 1 };
    if (this.failAfter !== undefined) throw this.failAfter;
    yield { type: 'final', text: '', finishReason: 'stop', usage: { prompt_tokens: 3, completion_tokens: this.pieces.length } };
  };
}

describe('grpc-server', () => {
  let stub: StubService;
  let llm: StubLlm;
  let server: GrpcServer;
  let client: grpc.Client;
  let internal: { err: InferneoError; method: string }[];

  beforeEach(async () => {
    stub = new StubService();
    llm = new StubLlm();
    internal = [];
    server = new GrpcServer({
      host: '127.0.0.1',
      port: 0,
      service: stub as unknown as InferenceService,
      llm: llm as unknown as LlmService,
      maxMessageBytes: 1024 * 1024,
      shutdownTimeoutMs: 200,
      onInternalError: (err, method) => internal.push({ err, method }),
    });
    const port = await server.listen();
    client = new (inferenceClientConstructor())(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  const call = (method: string, request: object, options: grpc.CallOptions = {}): Promise<unknown> =>
    new Promise((resolve, reject) => {
      (client as unknown as Record<string, UnaryMethod>)[method]!.call(client, request, new grpc.Metadata(), options, (err, value) => (err !== null ? reject(err) : resolve(value)));
    });

  const request = { model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1] }], raw_input_contents: [Buffer.alloc(4)] };

  it('answers from the service and reports unexpected errors as INTERNAL to the log hook', async () => {
    assert.deepEqual(await call('ServerLive', {}), { live: true });
    assert.deepEqual(await call('ServerReady', {}), { ready: false });
    await assert.rejects(call('ServerMetadata', {}), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /internal error: metadata bug/.test(err.details));
    await assert.rejects(call('ModelReady', { name: 'm' }), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL);
    assert.deepEqual(
      internal.map((i) => i.method),
      ['ServerMetadata', 'ModelReady'],
    );
    await assert.rejects(call('LogSettings', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED);
  });

  it('passes a cancelled call on to the service as a cancellation', async () => {
    await assert.rejects(call('ModelInfer', request, { deadline: Date.now() + 100 }), (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stub.cancelled, 1);
  });

  it('cancels what a stream has in flight when the stream is cancelled, and reports stream errors in-stream', async () => {
    stub.infer = async (_t, r, signal) => {
      if (r.id === 'bug') throw new Error('stream bug');
      if (r.id === 'full') throw new ResourceExhaustedError('queue full');
      return new Promise((_resolve, reject) =>
        signal?.onCancel(() => {
          stub.cancelled++;
          reject(new Error('cancelled'));
        }),
      );
    };
    const stream = (client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, { error_message: string; infer_response: { id: string } }> }).ModelStreamInfer();
    const replies: { error_message: string; infer_response: { id: string } }[] = [];
    stream.on('data', (r: { error_message: string; infer_response: { id: string } }) => replies.push(r));
    const closed = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.write({ ...request, id: 'bug' });
    stream.write({ ...request, id: 'full' });
    stream.write({ ...request, id: 'waits-1' });
    stream.write({ ...request, id: 'waits-2' });
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(replies.map((r) => [r.infer_response.id, r.error_message]).sort(), [
      ['bug', 'internal error: stream bug'],
      ['full', 'queue full'],
    ]);
    assert.deepEqual(internal.map((i) => i.method), ['ModelStreamInfer']);
    stream.cancel();
    assert.equal((await closed).code, grpc.status.CANCELLED);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stub.cancelled, 2);
  });

  type Reply = { error_message: string; infer_response: { id: string; parameters: Record<string, { bool_param: boolean }>; outputs: { name: string }[]; raw_output_contents: Buffer[] } };
  const text = (value: string): Buffer => encodeBytesElements([value]);
  const generateRequest = (id: string, inputs: Record<string, ['BYTES', string] | ['BOOL', boolean] | ['INT32', number] | ['FP16', number]>, parameters: object = {}): object => {
    const entries = Object.entries(inputs);
    return {
      model_name: 'llm',
      id,
      parameters,
      inputs: entries.map(([name, [datatype]]) => ({ name, datatype, shape: [1] })),
      raw_input_contents: entries.map(([, [datatype, value]]) => {
        if (datatype === 'BYTES') return text(value as string);
        if (datatype === 'BOOL') return Buffer.from([value ? 1 : 0]);
        const b = Buffer.alloc(datatype === 'FP16' ? 2 : 4);
        if (datatype === 'INT32') b.writeInt32LE(value as number);
        return b;
      }),
    };
  };
  /** Sends requests on one stream, half-closes, and collects every reply until the stream ends. */
  const stream = async (requests: object[]): Promise<Reply[]> => {
    const call = (client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, Reply> }).ModelStreamInfer();
    const replies: Reply[] = [];
    call.on('data', (r: Reply) => replies.push(r));
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (const r of requests) call.write(r);
    call.end();
    await ended;
    return replies;
  };
  const summary = (replies: Reply[]): [string, string, string[], boolean][] =>
    replies.map((r) => [
      r.infer_response.id,
      r.error_message,
      r.infer_response.raw_output_contents.map((b) => b.subarray(4).toString()),
      r.infer_response.parameters['triton_final_response']?.bool_param ?? false,
    ]);

  it('streams a decoupled model piece by piece, the last piece or an empty response final', async () => {
    assert.deepEqual(summary(await stream([generateRequest('a', { text_input: ['BYTES', 'The capital of France is'], stream: ['BOOL', true] })])), [
      ['a', '', [' Paris'], false],
      ['a', '', ['.'], true],
    ]);
    const replies = await stream([generateRequest('b', { text_input: ['BYTES', 'x'], stream: ['BOOL', true] }, { triton_enable_empty_final_response: { bool_param: true } })]);
    assert.deepEqual(summary(replies), [
      ['b', '', [' Paris'], false],
      ['b', '', ['.'], false],
      ['b', '', [], true],
    ]);
    assert.deepEqual(replies[0]!.infer_response.outputs.map((o) => o.name), ['text_output']);
    llm.pieces = [];
    assert.deepEqual(summary(await stream([generateRequest('c', { text_input: ['BYTES', 'x'], stream: ['BOOL', true] })])), [['c', '', [], true]]);
  });

  it('answers stream=false (the default) with the whole text, the prompt first unless excluded', async () => {
    const replies = await stream([
      generateRequest('whole', { text_input: ['BYTES', 'The capital of France is'] }, { max_tokens: { int64_param: 2 }, temperature: { double_param: 0 } }),
      generateRequest('excluded', {
        text_input: ['BYTES', 'The capital of France is'],
        stream: ['BOOL', false],
        exclude_input_in_output: ['BOOL', true],
        sampling_parameters: ['BYTES', '{"max_tokens": 3, "top_k": 5}'],
        seed: ['INT32', 7],
      }),
    ]);
    assert.deepEqual(summary(replies).sort(), [
      ['excluded', '', [' Paris.'], true],
      ['whole', '', ['The capital of France is Paris.'], true],
    ]);
    assert.deepEqual(
      llm.requests.map((r) => r.parameters),
      [
        { max_tokens: 2, temperature: 0 },
        { max_tokens: 3, top_k: 5, seed: 7 },
      ],
    );
  });

  it('answers bad generate requests in the stream, naming the field, and ModelInfer with UNIMPLEMENTED', async () => {
    llm.failAfter = new ResourceExhaustedError('worker gone');
    const replies = await stream([
      generateRequest('no-prompt', { stream: ['BOOL', true] }),
      generateRequest('wrong-type', { text_input: ['BOOL', true] }),
      generateRequest('bad-json', { text_input: ['BYTES', 'x'], sampling_parameters: ['BYTES', '{'] }),
      generateRequest('bad-param', { text_input: ['BYTES', 'x'] }, { max_tokens: { int64_param: 0 } }),
      generateRequest('bad-flag', { text_input: ['BYTES', 'x'] }, { triton_enable_empty_final_response: { string_param: 'yes' } }),
      generateRequest('half', { text_input: ['BYTES', 'x'], fp16: ['FP16', 0] }),
      { ...generateRequest('two', { text_input: ['BYTES', 'x'] }), inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [2] }], raw_input_contents: [Buffer.concat([text('a'), text('b')])] },
      { ...generateRequest('output', { text_input: ['BYTES', 'x'] }), outputs: [{ name: 'logits' }] },
      generateRequest('fails', { text_input: ['BYTES', 'x'], stream: ['BOOL', true] }),
    ]);
    const errors = new Map(replies.filter((r) => r.error_message !== '').map((r) => [r.infer_response.id, r.error_message]));
    assert.match(errors.get('no-prompt')!, /^text_input: is required/);
    assert.match(errors.get('wrong-type')!, /^text_input: input 'text_input' must be BYTES, got BOOL/);
    assert.match(errors.get('bad-json')!, /^sampling_parameters: is not valid JSON/);
    assert.match(errors.get('bad-param')!, /^max_tokens: must be at least 1/);
    assert.match(errors.get('bad-flag')!, /^triton_enable_empty_final_response: invalid value type, expected bool_param/);
    assert.match(errors.get('half')!, /^fp16: input 'fp16' of datatype FP16 is not taken/);
    assert.match(errors.get('two')!, /^text_input: input 'text_input' must hold exactly one element, got shape \[2\]/);
    assert.match(errors.get('output')!, /^logits: unexpected output/);
    // A failure after some pieces: the pieces first (none held back), then the error, final.
    assert.deepEqual(
      summary(replies.filter((r) => r.infer_response.id === 'fails')),
      [
        ['fails', '', [' Paris'], false],
        ['fails', '', ['.'], false],
        ['fails', 'worker gone', [], true],
      ],
    );
    await assert.rejects(
      call('ModelInfer', generateRequest('unary', { text_input: ['BYTES', 'x'] })),
      (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED && /^ModelInfer RPC doesn't support models with decoupled transaction policy: 'llm' generates text; use ModelStreamInfer/.test(err.details),
    );
  });

  it('stops a generation when its stream is cancelled', async () => {
    const call = (client as unknown as { ModelStreamInfer: () => grpc.ClientDuplexStream<object, Reply> }).ModelStreamInfer();
    const closed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.write(generateRequest('endless', { text_input: ['BYTES', 'endless'], stream: ['BOOL', true] }));
    await new Promise((r) => setTimeout(r, 100));
    call.cancel();
    assert.equal((await closed).code, grpc.status.CANCELLED);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(llm.cancelled, 1);
  });

  it('closes idempotently, cutting calls that outlive the shutdown timeout', async () => {
    stub.infer = () => new Promise(() => undefined);
    const pending = call('ModelInfer', request).catch((err: grpc.ServiceError) => err);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started >= 150, 'close waited for the call before cutting it');
    assert.ok([grpc.status.CANCELLED, grpc.status.UNAVAILABLE].includes(((await pending) as grpc.ServiceError).code));
    await server.close();
    await assert.rejects(server.listen(), /the gRPC server is closed/);
  });

  it('refuses a port already in use, and closes a server that never listened', async () => {
    const port = Number(client.getChannel().getTarget().split(':').pop());
    const other = new GrpcServer({ host: '127.0.0.1', port, service: stub as unknown as InferenceService, llm: llm as unknown as LlmService, maxMessageBytes: 1024 });
    grpc.setLogVerbosity(grpc.logVerbosity.NONE); // grpc-js logs the failed bind itself
    try {
      await assert.rejects(other.listen(), /cannot listen for gRPC on 127\.0\.0\.1:\d+/);
    } finally {
      grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    }
    await other.close();
    const idle = new GrpcServer({ host: '::1', port: 0, service: stub as unknown as InferenceService, llm: llm as unknown as LlmService, maxMessageBytes: 1024 });
    await idle.close();
  });
});
