import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { TritonGrpcClient } from '../src/backends/triton/client-grpc.js';
import { ErrorCode, type InferneoError } from '../src/errors.js';
import { inferenceServiceDefinition } from '../src/protocol/grpc-proto.js';

async function rejection(p: Promise<unknown>): Promise<InferneoError> {
  try {
    await p;
  } catch (err) {
    return err as InferneoError;
  }
  assert.fail('expected a rejection');
}

type Unary = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** A local gRPC server standing in for Triton's GRPCInferenceService. */
async function fakeTriton(handlers: Record<string, Unary>): Promise<{ address: string; requests: Record<string, Record<string, unknown>[]>; close: () => void }> {
  const server = new grpc.Server();
  const requests: Record<string, Record<string, unknown>[]> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    implementation[name] = ((call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      (requests[name] ??= []).push(call.request);
      handler(call, callback);
    }) as grpc.handleUnaryCall<Record<string, unknown>, unknown>;
  }
  server.addService(inferenceServiceDefinition(), implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, requests, close: () => server.forceShutdown() };
}

describe('client-grpc', () => {
  it("speaks Triton's gRPC API with raw tensor contents", async () => {
    const y = Buffer.from(new Float32Array([9, 8]).buffer);
    const server = await fakeTriton({
      ServerReady: (_c, cb) => cb(null, { ready: true }),
      RepositoryIndex: (_c, cb) => cb(null, { models: [{ name: 'a' }, { name: 'm', version: '1', state: 'READY', reason: '' }, { name: 'b', version: '2', state: 'UNAVAILABLE', reason: 'boom' }] }),
      ModelConfig: (call, cb) =>
        call.request['name'] === 'm'
          ? cb(null, { config: { name: 'm', backend: 'python', max_batch_size: 4, input: [{ name: 'X', data_type: 'TYPE_FP32', dims: ['2'] }], dynamic_batching: { max_queue_delay_microseconds: '100' } } })
          : cb(null, {}),
      RepositoryModelLoad: (_c, cb) => cb(null, {}),
      RepositoryModelUnload: (_c, cb) => cb(null, {}),
      ModelInfer: (call, cb) =>
        call.request['model_name'] === 'm'
          ? cb(null, { model_name: 'm', outputs: [{ name: 'Y', datatype: 'FP32', shape: ['1', '2'] }], raw_output_contents: [y] })
          : call.request['model_name'] === 'odd'
            ? cb(null, { outputs: [{ name: 'Y', datatype: 'FP32', shape: ['1'] }] })
            : cb({ code: grpc.status.NOT_FOUND, details: "Request for unknown model: 'x' is not found" }),
    });
    const client = new TritonGrpcClient(server.address);
    try {
      assert.equal(await client.serverReady(2000), true);
      assert.deepEqual(await client.repositoryIndex(2000), [
        { name: 'a' },
        { name: 'm', version: '1', state: 'READY' },
        { name: 'b', version: '2', state: 'UNAVAILABLE', reason: 'boom' },
      ]);
      // Canonical JSON: no defaults, no oneof markers, 64-bit integers as numbers.
      assert.deepEqual(await client.modelConfig('m', 2000), {
        name: 'm',
        backend: 'python',
        max_batch_size: 4,
        input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [2] }],
        dynamic_batching: { max_queue_delay_microseconds: 100 },
      });
      assert.deepEqual(await client.modelConfig('empty', 2000), { name: 'empty' });
      await client.loadModel('m', { name: 'm', version_policy: { specific: { versions: [1] } } }, 2000);
      await client.loadModel('m', undefined, 2000);
      await client.unloadModel('m', 2000);
      const load = server.requests['RepositoryModelLoad']!;
      assert.equal((load[0]!['parameters'] as Record<string, { string_param: string }>)['config']!.string_param, '{"name":"m","version_policy":{"specific":{"versions":[1]}}}');
      assert.deepEqual(load[1]!['parameters'], {});
      const x = { name: 'X', datatype: 'FP32' as const, shape: [1, 2], data: Buffer.from(new Float32Array([1, 2]).buffer) };
      const [out] = await client.infer('m', '3', { inputs: [x], outputs: ['Y'] }, 2000);
      assert.deepEqual(out, { name: 'Y', datatype: 'FP32', shape: [1, 2], data: y });
      const sent = server.requests['ModelInfer']![0]!;
      assert.equal(sent['model_version'], '3');
      assert.deepEqual(sent['raw_input_contents'], [x.data]);
      assert.deepEqual((sent['outputs'] as { name: string }[]).map((o) => o.name), ['Y']);
      const missing = await rejection(client.infer('x', '1', { inputs: [x], outputs: [] }, 2000));
      assert.equal(missing.code, ErrorCode.NOT_FOUND);
      assert.equal(missing.message, `Triton ${server.address}: Request for unknown model: 'x' is not found`);
      assert.match((await rejection(client.infer('odd', '1', { inputs: [x], outputs: [] }, 2000))).message, /without raw contents/);
    } finally {
      await client.close();
      await client.close();
      server.close();
    }
  });

  it('reports timeouts as DEADLINE_EXCEEDED and an unreachable server as UNAVAILABLE', async () => {
    const server = await fakeTriton({ ServerReady: () => undefined });
    const client = new TritonGrpcClient(server.address);
    const slow = await rejection(client.serverReady(200));
    assert.equal(slow.code, ErrorCode.DEADLINE_EXCEEDED);
    assert.equal(slow.message, `Triton ${server.address} did not answer within 200 ms`);
    await client.close();
    server.close();
    const gone = new TritonGrpcClient(server.address);
    const refused = await rejection(gone.repositoryIndex(2000));
    assert.equal(refused.code, ErrorCode.UNAVAILABLE);
    await gone.close();
  });
});
