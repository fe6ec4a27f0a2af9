import assert from 'node:assert/strict';
import { encodeBytesElements } from '../src/protocol/bytes-elements.js';
import { decodeRows, encodeRows, errorLine, type JobRow, outputLine } from '../src/jobs/row-codec.js';

describe('row-codec', () => {
  it('round-trips rows with raw tensor bytes of every kind, and the outputs they ask for', () => {
    const rows: JobRow[] = [
      { row: 0, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: Buffer.from(new Float32Array([1, 2.5, -3]).buffer) }], outputs: [] },
      {
        row: 41,
        inputs: [
          { name: 'TEXT', datatype: 'BYTES', shape: [1, 1], data: encodeBytesElements(['grüße']) },
          { name: 'ids', datatype: 'INT64', shape: [2], data: Buffer.from(new BigInt64Array([1n, -2n]).buffer) },
        ],
        outputs: ['UPPER'],
      },
    ];
    const decoded = decodeRows(encodeRows(rows));
    assert.deepEqual(decoded, rows);
    assert.ok(Buffer.isBuffer(decoded[1]!.inputs[0]!.data));
  });

  it('writes output lines as KServe-v2 JSON tensors, and error lines with the code', () => {
    const line = outputLine(7, 'classifier', '2', [
      { name: 'probabilities', datatype: 'FP32', shape: [1, 2], data: Buffer.from(new Float32Array([0.25, 0.75]).buffer) },
      { name: 'label', datatype: 'INT64', shape: [1, 1], data: Buffer.from(new BigInt64Array([1n]).buffer) },
    ]);
    assert.deepEqual(JSON.parse(line), {
      row: 7,
      model_name: 'classifier',
      model_version: '2',
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] },
        { name: 'label', datatype: 'INT64', shape: [1, 1], data: [1] },
      ],
    });
    assert.deepEqual(JSON.parse(errorLine(3, 'bad "shape"\nhere', 'INVALID_ARGUMENT')), { row: 3, error: 'bad "shape"\nhere', code: 'INVALID_ARGUMENT' });
  });
});
