import assert from 'node:assert/strict';
import { parseInferRequest } from '../src/protocol/infer-request.js';
import { validateInferRequest } from '../src/registry/input-validation.js';
import { parseModelConfig } from '../src/registry/model-config.js';

const config = parseModelConfig(
  `backend: "python" max_batch_size: 4
   input [ { name: "a" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "t" data_type: TYPE_STRING dims: [ -1 ] optional: true } ]
   output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]`,
  'm',
);

function check(body: unknown): void {
  validateInferRequest(config, parseInferRequest(Buffer.from(JSON.stringify(body))));
}

const a = (shape: number[], data: unknown[]): unknown => ({ name: 'a', datatype: 'FP32', shape, data });

describe('input-validation', () => {
  it('accepts a request that matches the signature', () => {
    check({ inputs: [a([2, 2], [1, 2, 3, 4])], outputs: [{ name: 'y' }] });
    check({ inputs: [a([1, 2], [1, 2]), { name: 't', datatype: 'BYTES', shape: [1, 3], data: ['a', 'b', 'c'] }] });
  });

  const cases: [string, unknown, RegExp][] = [
    ['unknown input', { inputs: [a([1, 2], [1, 2]), { name: 'b', datatype: 'FP32', shape: [1], data: [1] }] }, /unexpected input 'b' for model 'm'; its inputs are 'a', 't'/],
    ['wrong datatype', { inputs: [{ name: 'a', datatype: 'FP64', shape: [1, 2], data: [1, 2] }] }, /input 'a': datatype FP64 does not match the model's FP32/],
    ['wrong shape', { inputs: [a([1, 3], [1, 2, 3])] }, /input 'a': shape \[1,3\] does not match the model's \[-1,2\]/],
    ['missing batch dimension', { inputs: [a([], [1])] }, /shape \[\] does not match/],
    ['batch too large', { inputs: [a([5, 2], Array(10).fill(0))] }, /batch size 5 is outside 1\.\.4/],
    ['batch sizes differ', { inputs: [a([1, 2], [1, 2]), { name: 't', datatype: 'BYTES', shape: [2, 1], data: ['a', 'b'] }] }, /batch size 2 differs from the other inputs' 1/],
    ['missing input', { inputs: [{ name: 't', datatype: 'BYTES', shape: [1, 1], data: ['a'] }] }, /model 'm' needs input 'a', missing from the request/],
    ['unknown output', { inputs: [a([1, 2], [1, 2])], outputs: [{ name: 'z' }] }, /unknown output 'z' requested from model 'm'; its outputs are 'y'/],
  ];
  for (const [what, body, message] of cases) {
    it(`rejects ${what}`, () => assert.throws(() => check(body), message));
  }

  it('rejects BYTES data whose element count disagrees with the shape', () => {
    const header = Buffer.from(JSON.stringify({ inputs: [a([1, 2], [1, 2]), { name: 't', datatype: 'BYTES', shape: [1, 2], parameters: { binary_data_size: 5 } }] }));
    const bytes = Buffer.from([1, 0, 0, 0, 0x61]);
    const request = parseInferRequest(Buffer.concat([header, bytes]), header.length);
    assert.throws(() => validateInferRequest(config, request), /input 't': BYTES shape \[1,2\] needs 2 elements, got 1/);
  });
});
