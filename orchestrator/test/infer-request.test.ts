import assert from 'node:assert/strict';
import { parseInferRequest } from '../src/protocol/infer-request.js';
import { encodeInferResponse } from '../src/protocol/infer-response.js';

function binaryBody(header: unknown, ...data: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...data]), headerLength: json.length };
}

describe('infer-request', () => {
  it('parses JSON inputs, outputs and parameters', () => {
    const req = parseInferRequest(
      Buffer.from(
        JSON.stringify({
          id: 'r1',
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }],
          outputs: [{ name: 'y', parameters: { binary_data: true } }, { name: 'z' }],
          parameters: { binary_data_output: false, priority: 2 },
        }),
      ),
    );
    assert.equal(req.id, 'r1');
    assert.equal(req.inputs[0]!.data.length, 8);
    assert.deepEqual(req.outputs, [{ name: 'y', binary: true }, { name: 'z' }]);
    assert.equal(req.binaryOutputs, false);
    assert.equal(req.parameters['priority'], 2);
  });

  it('takes binary inputs as views of the body, in input order', () => {
    const a = Buffer.from(new Float32Array([1, 2, 3]).buffer);
    const b = Buffer.from([1, 0]);
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [3], parameters: { binary_data_size: 12 } },
          { name: 'j', datatype: 'INT8', shape: [1], data: [5] },
          { name: 'b', datatype: 'BOOL', shape: [2], parameters: { binary_data_size: 2 } },
        ],
        parameters: { binary_data_output: true },
      },
      a,
      b,
    );
    const req = parseInferRequest(body, headerLength);
    assert.deepEqual(req.inputs.map((t) => t.data.toString('hex')), [a.toString('hex'), '05', '0100']);
    assert.equal(req.inputs[0]!.data.buffer, body.buffer);
    assert.equal(req.binaryOutputs, true);
  });

  const bad: [string, () => unknown, RegExp][] = [
    ['malformed JSON', () => parseInferRequest(Buffer.from('{"inputs": [')), /malformed JSON/],
    ['not an object', () => parseInferRequest(Buffer.from('[1]')), /must be a JSON object/],
    ['no inputs', () => parseInferRequest(Buffer.from('{"inputs": []}')), /non-empty 'inputs'/],
    ['bad datatype', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"FP8","shape":[1],"data":[1]}]}')), /unknown datatype "FP8"/],
    ['bad shape', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}')), /non-negative integers/],
    ['no data', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}')), /neither 'data' nor/],
    ['duplicate input', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}')), /given more than once/],
    ['header length past the body', () => parseInferRequest(Buffer.from('{}'), 10), /Inference-Header-Content-Length is 10 but the body has only 2 bytes/],
    ['header length not a number', () => parseInferRequest(Buffer.from('{}'), NaN), /non-negative integer/],
    ['truncated binary', () => {
      const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }] }, Buffer.alloc(5));
      return parseInferRequest(body, headerLength);
    }, /input 'x': binary data is truncated: expected 8 bytes, 5 remain/],
    ['binary size mismatch', () => {
      const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 4 } }] }, Buffer.alloc(4));
      return parseInferRequest(body, headerLength);
    }, /needs 8 bytes, 'binary_data_size' is 4/],
    ['extra bytes', () => {
      const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [1] }] }, Buffer.alloc(3));
      return parseInferRequest(body, headerLength);
    }, /3 bytes follow the inputs' data/],
    ['shared memory', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"shared_memory_region":"r"}}]}')), /shared memory is not supported/],
    ['classification', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}],"outputs":[{"name":"y","parameters":{"classification":2}}]}')), /classification extension/],
    ['bad output', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}],"outputs":[{}]}')), /outputs\[0\] needs a 'name'/],
    ['bad id', () => parseInferRequest(Buffer.from('{"id":5,"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}]}')), /'id' must be a string/],
    ['bad binary flag', () => parseInferRequest(Buffer.from('{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1]}],"parameters":{"binary_data_output":1}}')), /binary_data_output/],
  ];
  for (const [what, run, message] of bad) {
    it(`rejects ${what} with INVALID_ARGUMENT or UNSUPPORTED and a message`, () => {
      assert.throws(run, (err: Error & { code?: string }) => {
        assert.match(err.message, message);
        assert.ok(err.code === 'INVALID_ARGUMENT' || err.code === 'UNSUPPORTED', err.code);
        return true;
      });
    });
  }
});

describe('infer-response', () => {
  const outputs = [
    { name: 'p', datatype: 'FP32' as const, shape: [1, 2], data: Buffer.from(new Float32Array([0.5, 0.25]).buffer) },
    { name: 'l', datatype: 'INT64' as const, shape: [1, 1], data: Buffer.from(new BigInt64Array([2n ** 60n]).buffer) },
  ];

  it('writes JSON outputs with exact INT64 digits', () => {
    const { body, headerLength } = encodeInferResponse({ modelName: 'm', modelVersion: '2', id: 'a', outputs }, [], false);
    assert.equal(headerLength, undefined);
    assert.equal(
      body.toString(),
      '{"model_name":"m","model_version":"2","id":"a","outputs":[{"name":"p","datatype":"FP32","shape":[1,2],"data":[0.5,0.25]},{"name":"l","datatype":"INT64","shape":[1,1],"data":[1152921504606846976]}]}',
    );
  });

  it('appends binary outputs after the header, per output or by default', () => {
    const { body, headerLength } = encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs }, [{ name: 'l', binary: false }], true);
    const header = JSON.parse(body.subarray(0, headerLength).toString());
    assert.deepEqual(header.outputs[0].parameters, { binary_data_size: 8 });
    assert.deepEqual(header.outputs[1].data, [1152921504606846976]);
    assert.equal(body.subarray(headerLength!).toString('hex'), outputs[0]!.data.toString('hex'));
  });
});
