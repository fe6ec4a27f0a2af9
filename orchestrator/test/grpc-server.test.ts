import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { type InferneoError, ResourceExhaustedError } from '../src/errors.js';
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

describe('grpc-server', () => {
  let stub: StubService;
  let server: GrpcServer;
  let client: grpc.Client;
  let internal: { err: InferneoError; method: string }[];

  beforeEach(async () => {
    stub = new StubService();
    internal = [];
    server = new GrpcServer({
      host: '127.0.0.1',
      port: 0,
      service: stub as unknown as InferenceService,
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
    const other = new GrpcServer({ host: '127.0.0.1', port, service: stub as unknown as InferenceService, maxMessageBytes: 1024 });
    grpc.setLogVerbosity(grpc.logVerbosity.NONE); // grpc-js logs the failed bind itself
    try {
      await assert.rejects(other.listen(), /cannot listen for gRPC on 127\.0\.0\.1:\d+/);
    } finally {
      grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    }
    await other.close();
    const idle = new GrpcServer({ host: '::1', port: 0, service: stub as unknown as InferenceService, maxMessageBytes: 1024 });
    await idle.close();
  });
});
