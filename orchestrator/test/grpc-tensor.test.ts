import assert from 'node:assert/strict';
import { ErrorCode, type InferneoError } from '../src/errors.js';
import { decodeBytesElements, encodeBytesElements } from '../src/protocol/bytes-elements.js';
import { inferencePackageDefinition } from '../src/protocol/grpc-proto.js';
import {
  contentsToBuffer,
  decodeModelInferRequest,
  encodeModelInferResponse,
  type GrpcModelInferRequest,
  type GrpcModelInferResponse,
  parametersFromGrpc,
  parametersToGrpc,
  parameterValue,
} from '../src/protocol/grpc-tensor.js';

interface Codec {
  serialize(value: object): Buffer;
  deserialize(bytes: Buffer): unknown;
}

/** The message types exactly as grpc-js encodes and decodes them with our proto and loader options. */
const codec = (name: string): Codec => inferencePackageDefinition()[`inference.${name}`] as unknown as Codec;
const viaWire = (request: object): GrpcModelInferRequest => {
  const type = codec('ModelInferRequest');
  return type.deserialize(type.serialize(request)) as GrpcModelInferRequest;
};

function throwsCode(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  assert.throws(fn, (err: InferneoError) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

describe('grpc-tensor', () => {
  it('decodes raw_input_contents as views, one per input in order, with id, outputs and parameters', () => {
    const a = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
    const b = encodeBytesElements(['x', 'yz']);
    const request = viaWire({
      model_name: 'm',
      id: 'req-1',
      parameters: { priority: { uint64_param: 2 }, timeout: { int64_param: 1000 }, tag: { string_param: 't' } },
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [2, 2] },
        { name: 'b', datatype: 'BYTES', shape: [2] },
      ],
      outputs: [{ name: 'out' }],
      raw_input_contents: [a, b],
    });
    const decoded = decodeModelInferRequest(request);
    assert.equal(decoded.id, 'req-1');
    assert.deepEqual(decoded.parameters, { priority: 2, timeout: 1000, tag: 't' });
    assert.deepEqual(decoded.outputs, [{ name: 'out' }]);
    assert.equal(decoded.binaryOutputs, true);
    assert.deepEqual(
      decoded.inputs.map((t) => [t.name, t.datatype, t.shape]),
      [
        ['a', 'FP32', [2, 2]],
        ['b', 'BYTES', [2]],
      ],
    );
    assert.deepEqual(decoded.inputs[0]!.data, a);
    assert.deepEqual(decodeBytesElements(decoded.inputs[1]!.data).map(String), ['x', 'yz']);
    // No id given: none reported.
    assert.equal(decodeModelInferRequest(viaWire({ model_name: 'm', inputs: [{ name: 'a', datatype: 'BOOL', shape: [1] }], raw_input_contents: [Buffer.from([1])] })).id, undefined);
  });

  it('takes FP16 and BF16 in raw form', () => {
    const half = Buffer.from([0x00, 0x3c, 0x00, 0xc0]);
    for (const datatype of ['FP16', 'BF16']) {
      const decoded = decodeModelInferRequest(viaWire({ model_name: 'm', inputs: [{ name: 'h', datatype, shape: [2] }], raw_input_contents: [half] }));
      assert.deepEqual(decoded.inputs[0]!.data, half);
    }
  });

  const typedCases: { datatype: string; field: string; values: unknown[]; bytes: Buffer }[] = [
    { datatype: 'BOOL', field: 'bool_contents', values: [true, false, true], bytes: Buffer.from([1, 0, 1]) },
    { datatype: 'INT8', field: 'int_contents', values: [-128, 0, 127], bytes: Buffer.from(new Int8Array([-128, 0, 127]).buffer) },
    { datatype: 'INT16', field: 'int_contents', values: [-32768, 1, 32767], bytes: Buffer.from(new Int16Array([-32768, 1, 32767]).buffer) },
    { datatype: 'INT32', field: 'int_contents', values: [-(2 ** 31), 5, 2 ** 31 - 1], bytes: Buffer.from(new Int32Array([-(2 ** 31), 5, 2 ** 31 - 1]).buffer) },
    { datatype: 'INT64', field: 'int64_contents', values: ['-9223372036854775808', 7, '9223372036854775807'], bytes: Buffer.from(new BigInt64Array([-(2n ** 63n), 7n, 2n ** 63n - 1n]).buffer) },
    { datatype: 'UINT8', field: 'uint_contents', values: [0, 1, 255], bytes: Buffer.from([0, 1, 255]) },
    { datatype: 'UINT16', field: 'uint_contents', values: [0, 2, 65535], bytes: Buffer.from(new Uint16Array([0, 2, 65535]).buffer) },
    { datatype: 'UINT32', field: 'uint_contents', values: [0, 3, 2 ** 32 - 1], bytes: Buffer.from(new Uint32Array([0, 3, 2 ** 32 - 1]).buffer) },
    { datatype: 'UINT64', field: 'uint64_contents', values: [0, 4, '18446744073709551615'], bytes: Buffer.from(new BigUint64Array([0n, 4n, 2n ** 64n - 1n]).buffer) },
    { datatype: 'FP32', field: 'fp32_contents', values: [1.5, -2, 0.25], bytes: Buffer.from(new Float32Array([1.5, -2, 0.25]).buffer) },
    { datatype: 'FP64', field: 'fp64_contents', values: [1e300, -0.5, 3], bytes: Buffer.from(new Float64Array([1e300, -0.5, 3]).buffer) },
    { datatype: 'BYTES', field: 'bytes_contents', values: [Buffer.from('a'), Buffer.from(''), Buffer.from('ü')], bytes: encodeBytesElements(['a', '', 'ü']) },
  ];
  for (const { datatype, field, values, bytes } of typedCases) {
    it(`converts typed ${field} to raw ${datatype} bytes, through the wire encoding`, () => {
      const decoded = decodeModelInferRequest(viaWire({ model_name: 'm', inputs: [{ name: 'x', datatype, shape: [3], contents: { [field]: values } }] }));
      assert.deepEqual(decoded.inputs[0]!.data, bytes);
    });
  }

  it('refuses typed values out of the datatype range or in the wrong field', () => {
    throwsCode(() => contentsToBuffer('INT8', [1], { int_contents: [128] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /element 0 is 128, outside the range of INT8 \[-128, 127\]/);
    throwsCode(() => contentsToBuffer('UINT16', [1], { uint_contents: [70000] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /outside the range of UINT16/);
    throwsCode(() => contentsToBuffer('INT64', [1], { int64_contents: ['9223372036854775808'] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /outside the range of INT64/);
    throwsCode(() => contentsToBuffer('UINT64', [1], { uint64_contents: [-1] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /outside the range of UINT64/);
    throwsCode(() => contentsToBuffer('INT64', [1], { int64_contents: ['1.5'] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /element 0 is 1\.5, expected an integer for INT64/);
    throwsCode(() => contentsToBuffer('FP32', [2], { fp64_contents: [1, 2] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /FP32 values belong in contents\.fp32_contents, not contents\.fp64_contents/);
    throwsCode(() => contentsToBuffer('FP32', [2], { fp32_contents: [1] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /shape \[2\] needs 2 elements, got 1 values in contents\.fp32_contents/);
    throwsCode(() => contentsToBuffer('FP32', [2], null, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /needs 2 elements, got no data/);
    throwsCode(() => contentsToBuffer('FP16', [1], { fp32_contents: [1] }, "input 'x'"), ErrorCode.INVALID_ARGUMENT, /FP16 data has no typed contents field; send it in raw_input_contents/);
    // An empty tensor needs no data.
    assert.equal(contentsToBuffer('FP32', [0, 4], null, "input 'x'").length, 0);
  });

  it('refuses malformed requests with INVALID_ARGUMENT naming the problem', () => {
    const raw = Buffer.alloc(8);
    const one = (input: object, extra: object = {}): GrpcModelInferRequest => viaWire({ model_name: 'm', inputs: [input], raw_input_contents: [raw], ...extra });
    throwsCode(() => decodeModelInferRequest(viaWire({ model_name: 'm' })), ErrorCode.INVALID_ARGUMENT, /at least one input/);
    throwsCode(() => decodeModelInferRequest(one({ name: '', datatype: 'FP32', shape: [2] })), ErrorCode.INVALID_ARGUMENT, /inputs\[0\] needs a name/);
    throwsCode(() => decodeModelInferRequest(one({ name: 'x', datatype: 'float', shape: [2] })), ErrorCode.INVALID_ARGUMENT, /input 'x': unknown datatype "float"/);
    throwsCode(() => decodeModelInferRequest(one({ name: 'x', datatype: 'FP32', shape: [-2] })), ErrorCode.INVALID_ARGUMENT, /'shape' must hold non-negative integers, got -2/);
    throwsCode(() => decodeModelInferRequest(one({ name: 'x', datatype: 'FP32', shape: [3] })), ErrorCode.INVALID_ARGUMENT, /FP32 shape \[3\] needs 12 bytes, raw_input_contents\[0\] has 8/);
    throwsCode(
      () => decodeModelInferRequest(one({ name: 'x', datatype: 'FP32', shape: [2], contents: { fp32_contents: [1, 2] } })),
      ErrorCode.INVALID_ARGUMENT,
      /typed contents although the request uses raw_input_contents/,
    );
    throwsCode(
      () => decodeModelInferRequest(viaWire({ model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }, { name: 'x', datatype: 'FP32', shape: [2] }], raw_input_contents: [raw, raw] })),
      ErrorCode.INVALID_ARGUMENT,
      /input 'x' is given more than once/,
    );
    throwsCode(
      () => decodeModelInferRequest(viaWire({ model_name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }, { name: 'y', datatype: 'FP32', shape: [2] }], raw_input_contents: [raw] })),
      ErrorCode.INVALID_ARGUMENT,
      /raw_input_contents has 1 entries but the request has 2 inputs/,
    );
    throwsCode(() => decodeModelInferRequest(one({ name: 'x', datatype: 'FP32', shape: [2] }, { outputs: [{ name: '' }] })), ErrorCode.INVALID_ARGUMENT, /outputs\[0\] needs a name/);
    throwsCode(() => decodeModelInferRequest(one({ name: 'x', datatype: 'FP32', shape: [2] }, { parameters: { priority: {} } })), ErrorCode.INVALID_ARGUMENT, /request parameter 'priority' has no value/);
  });

  it('refuses shared memory and classification as not supported', () => {
    const base = { model_name: 'm', raw_input_contents: [Buffer.alloc(4)] };
    throwsCode(
      () => decodeModelInferRequest(viaWire({ ...base, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { shared_memory_region: { string_param: 'r' } } }] })),
      ErrorCode.UNSUPPORTED,
      /input 'x': shared memory is not supported/,
    );
    const input = [{ name: 'x', datatype: 'FP32', shape: [1] }];
    throwsCode(
      () => decodeModelInferRequest(viaWire({ ...base, inputs: input, outputs: [{ name: 'y', parameters: { classification: { int64_param: 3 } } }] })),
      ErrorCode.UNSUPPORTED,
      /output 'y': the classification extension is not supported/,
    );
    throwsCode(
      () => decodeModelInferRequest(viaWire({ ...base, inputs: input, outputs: [{ name: 'y', parameters: { shared_memory_byte_size: { int64_param: 3 } } }] })),
      ErrorCode.UNSUPPORTED,
      /output 'y': shared memory/,
    );
  });

  it('reads every InferParameter kind; 64-bit integers beyond 2^53 stay exact as strings', () => {
    const params = viaWire({
      model_name: 'm',
      parameters: {
        b: { bool_param: true },
        i: { int64_param: -5 },
        big: { int64_param: '9007199254740993' },
        u: { uint64_param: '18446744073709551615' },
        d: { double_param: 0.5 },
        s: { string_param: 'hi' },
      },
    }).parameters;
    assert.deepEqual(parametersFromGrpc(params, 'request'), { b: true, i: -5, big: '9007199254740993', u: '18446744073709551615', d: 0.5, s: 'hi' });
    assert.deepEqual(parametersFromGrpc(undefined, 'request'), {});
    assert.equal(parameterValue({ parameter_choice: 'bool_param' }, 'p'), false);
    assert.equal(parameterValue({ parameter_choice: 'string_param' }, 'p'), '');
    assert.equal(parameterValue({ parameter_choice: 'double_param' }, 'p'), 0);
    assert.equal(parameterValue({ parameter_choice: 'int64_param' }, 'p'), 0);
    assert.equal(parameterValue({ parameter_choice: 'uint64_param' }, 'p'), 0);
  });

  it('writes parameters back as InferParameters', () => {
    assert.deepEqual(parametersToGrpc({ a: true, b: 3, c: 0.5, d: 'x' }), {
      a: { bool_param: true },
      b: { int64_param: 3 },
      c: { double_param: 0.5 },
      d: { string_param: 'x' },
    });
  });

  it('encodes responses with raw_output_contents and int64 shapes, decodable with the same proto', () => {
    const probs = Buffer.from(new Float32Array([0.25, 0.75]).buffer);
    const text = encodeBytesElements(['ok']);
    const response = encodeModelInferResponse(
      {
        modelName: 'm',
        modelVersion: '3',
        id: 'abc',
        outputs: [
          { name: 'p', datatype: 'FP32', shape: [1, 2], data: probs },
          { name: 't', datatype: 'BYTES', shape: [1], data: text },
        ],
      },
      parametersToGrpc({ triton_final_response: true }),
    );
    assert.equal(response.raw_output_contents[0], probs, 'output bytes are not copied');
    const type = codec('ModelInferResponse');
    const decoded = type.deserialize(type.serialize(response)) as GrpcModelInferResponse & { outputs: { shape: string[] }[] };
    assert.equal(decoded.model_name, 'm');
    assert.equal(decoded.model_version, '3');
    assert.equal(decoded.id, 'abc');
    assert.deepEqual(decoded.outputs.map((o) => [o.name, o.datatype, o.shape]), [
      ['p', 'FP32', ['1', '2']],
      ['t', 'BYTES', ['1']],
    ]);
    assert.deepEqual(decoded.raw_output_contents, [probs, text]);
    assert.equal(decoded.parameters['triton_final_response']!.bool_param, true);
    assert.equal(encodeModelInferResponse({ modelName: 'm', modelVersion: '1', outputs: [] }).id, '');
  });
});
