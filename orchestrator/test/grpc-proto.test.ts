import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseModelConfig } from '../src/registry/model-config.js';
import { conformToMessage, inferenceClientConstructor, inferencePackageDefinition, inferenceServiceDefinition, protoDir } from '../src/protocol/grpc-proto.js';

interface Codec {
  serialize(value: object): Buffer;
  deserialize(bytes: Buffer): Record<string, unknown>;
}

/** Encodes and decodes a ModelConfig exactly as the gRPC server and a client would. */
function roundTrip(config: Record<string, unknown>): Record<string, unknown> {
  const type = inferencePackageDefinition()['inference.ModelConfigResponse'] as unknown as Codec;
  return type.deserialize(type.serialize({ config }))['config'] as Record<string, unknown>;
}

describe('grpc-proto', () => {
  it('finds the .proto files and declares every RPC of Triton’s service', () => {
    assert.ok(existsSync(path.join(protoDir(), 'grpc_service.proto')));
    assert.ok(existsSync(path.join(protoDir(), 'model_config.proto')));
    const rpcs = Object.keys(inferenceServiceDefinition());
    for (const rpc of ['ServerLive', 'ServerReady', 'ModelReady', 'ServerMetadata', 'ModelMetadata', 'ModelInfer', 'ModelStreamInfer', 'ModelConfig', 'ModelStatistics', 'RepositoryIndex', 'RepositoryModelLoad', 'RepositoryModelUnload', 'SystemSharedMemoryStatus', 'CudaSharedMemoryRegister', 'TraceSetting', 'LogSettings']) {
      assert.ok(rpcs.includes(rpc), rpc);
    }
    assert.equal(inferenceServiceDefinition()['ModelStreamInfer']!.requestStream, true);
    assert.equal(typeof inferenceClientConstructor(), 'function');
  });

  it('conforms a text-format config to the ModelConfig message so that every field survives encoding', () => {
    const config = parseModelConfig(
      `name: "m"
backend: "python"
max_batch_size: 8
input [ { name: "a" data_type: TYPE_FP16 dims: [ -1, 3 ] reshape: { shape: [ 3 ] } optional: true } ]
output [ { name: "b" data_type: TYPE_STRING dims: 1 label_filename: "labels.txt" } ]
dynamic_batching {
  max_queue_delay_microseconds: 100 preferred_batch_size: 4 priority_levels: 2 default_priority_level: 2
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 allow_timeout_override: true max_queue_size: 3 }
  priority_queue_policy { key: 1 value: { max_queue_size: 5 } }
  priority_queue_policy { key: 2 value: { max_queue_size: 6 } }
}
parameters { key: "EXECUTION_ENV_PATH" value: { string_value: "/x" } }
model_operations { op_library_filename: "libx.so" }
model_repository_agents { agents [ { name: "checksum" parameters { key: "MD5:x" value: "abc" } } ] }
model_transaction_policy { decoupled: true }
response_cache { enable: true }
model_warmup [ { name: "w" batch_size: 1 inputs { key: "a" value: { data_type: TYPE_FP16 dims: [ 3 ] zero_data: true } } } ]
version_policy: { specific { versions: [ 1, 3 ] } }
optimization { graph { level: 1 } }
`,
      'm',
    );
    const out = roundTrip(conformToMessage('inference.ModelConfig', config.json));
    assert.equal(out['backend'], 'python');
    assert.equal(out['max_batch_size'], 8);
    assert.deepEqual(out['version_policy'], { specific: { versions: ['1', '3'] }, policy_choice: 'specific' });
    const input = (out['input'] as Record<string, unknown>[])[0]!;
    assert.deepEqual([input['data_type'], input['dims'], input['reshape'], input['optional']], ['TYPE_FP16', ['-1', '3'], { shape: ['3'] }, true]);
    const output = (out['output'] as Record<string, unknown>[])[0]!;
    assert.deepEqual([output['dims'], output['label_filename']], [['1'], 'labels.txt']);
    const batching = out['dynamic_batching'] as Record<string, unknown>;
    assert.deepEqual(batching['preferred_batch_size'], [4]);
    assert.equal(batching['max_queue_delay_microseconds'], '100');
    assert.deepEqual(batching['default_queue_policy'], { timeout_action: 'DELAY', default_timeout_microseconds: '1000', allow_timeout_override: true, max_queue_size: 3 });
    // Decoded 64-bit map keys are protobufjs's 8-byte hash strings.
    const byPriority = new Map(Object.entries(batching['priority_queue_policy'] as Record<string, { max_queue_size: number }>).map(([k, v]) => [Buffer.from(k, 'latin1').readBigUInt64LE(), v.max_queue_size]));
    assert.deepEqual(byPriority, new Map([[1n, 5], [2n, 6]]));
    assert.deepEqual(out['parameters'], { EXECUTION_ENV_PATH: { string_value: '/x' } });
    assert.deepEqual(out['model_operations'], { op_library_filename: ['libx.so'] });
    assert.deepEqual(out['model_repository_agents'], { agents: [{ name: 'checksum', parameters: { 'MD5:x': 'abc' } }] });
    assert.deepEqual(out['model_transaction_policy'], { decoupled: true });
    assert.deepEqual(out['response_cache'], { enable: true });
    const warmup = (out['model_warmup'] as { inputs: Record<string, Record<string, unknown>> }[])[0]!;
    assert.deepEqual([warmup.inputs['a']!['data_type'], warmup.inputs['a']!['zero_data']], ['TYPE_FP16', true]);
    assert.equal(out['optimization'], undefined, 'fields the message lacks are dropped');
  });

  it('drops values of the wrong kind instead of failing to encode', () => {
    const conformed = conformToMessage('inference.ModelConfig', {
      name: 'x',
      version_policy: 'latest',
      input: [{ name: 'a', reshape: 7 }, 'junk'],
      dynamic_batching: { priority_queue_policy: { high: { max_queue_size: 1 }, 3: { max_queue_size: 2 } } },
      parameters: [{ key: 'k' }],
    });
    assert.deepEqual(conformed, { name: 'x', input: [{ name: 'a' }], dynamic_batching: { priority_queue_policy: { 3: { max_queue_size: 2 } } } });
    roundTrip(conformed);
    assert.deepEqual(conformToMessage('inference.ModelConfig', 'not an object'), {});
    assert.throws(() => conformToMessage('inference.NoSuchMessage', {}), /unknown message type inference\.NoSuchMessage/);
  });
});
