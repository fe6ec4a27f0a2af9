import assert from 'node:assert/strict';
import { decodeBytesElements, encodeBytesElements } from '../src/protocol/bytes-elements.js';
import { type Datatype, DATATYPES, elementSize } from '../src/protocol/datatypes.js';
import { bufferToJsonData, jsonDataToBuffer } from '../src/protocol/json-tensor.js';
import { python } from './helpers.js';

const NUMPY: Partial<Record<Datatype, string>> = {
  BOOL: 'bool',
  UINT8: '<u1',
  UINT16: '<u2',
  UINT32: '<u4',
  UINT64: '<u8',
  INT8: '<i1',
  INT16: '<i2',
  INT32: '<i4',
  INT64: '<i8',
  FP16: '<f2',
  FP32: '<f4',
  FP64: '<f8',
};

const SAMPLES: Record<Datatype, unknown[]> = {
  BOOL: [true, false, true, true],
  UINT8: [0, 1, 127, 255],
  UINT16: [0, 1, 40000, 65535],
  UINT32: [0, 7, 3000000000, 4294967295],
  UINT64: [0, 1, 2 ** 40, Number.MAX_SAFE_INTEGER],
  INT8: [-128, -1, 0, 127],
  INT16: [-32768, -2, 3, 32767],
  INT32: [-2147483648, -5, 6, 2147483647],
  INT64: [Number.MIN_SAFE_INTEGER, -1, 0, Number.MAX_SAFE_INTEGER],
  FP16: [0.5, -2, 65504, 0.25],
  BF16: [1, -0.5, 256, 3],
  FP32: [0.10000000149011612, -3.5, 1048576, 0],
  FP64: [0.1, -1e-300, 1.5e300, Math.PI],
  BYTES: ['hello', '', 'ünïcode', 'a\u0000b'],
};

describe('json-tensor', () => {
  for (const datatype of DATATYPES) {
    it(`round-trips ${datatype} through raw bytes`, () => {
      const data = SAMPLES[datatype];
      const raw = jsonDataToBuffer(datatype, [2, 2], data, 'input x');
      const size = elementSize(datatype);
      if (size !== undefined) assert.equal(raw.length, size * 4);
      assert.deepEqual(JSON.parse(bufferToJsonData(datatype, raw)), data);
    });
  }

  it('lays out every numeric datatype exactly as numpy does', () => {
    for (const [datatype, dtype] of Object.entries(NUMPY) as [Datatype, string][]) {
      const raw = jsonDataToBuffer(datatype, [4], SAMPLES[datatype], 'x');
      const expected = python(
        `import json, sys, numpy as np; print(np.array(json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()), dtype="${dtype}").tobytes().hex())`,
        JSON.stringify(SAMPLES[datatype]),
      ).trim();
      assert.equal(raw.toString('hex'), expected, datatype);
    }
  });

  it('accepts nested data in row-major order', () => {
    const raw = jsonDataToBuffer('INT32', [2, 2], [[1, 2], [3, 4]], 'x');
    assert.deepEqual(Array.from(new Int32Array(raw.buffer, raw.byteOffset, 4)), [1, 2, 3, 4]);
  });

  it('names the element that is wrong', () => {
    assert.throws(() => jsonDataToBuffer('FP32', [2], [1, 'a'], "input 'x'"), /input 'x': element 1 is "a", expected a number for FP32/);
    assert.throws(() => jsonDataToBuffer('UINT8', [1], [256], 'x'), /element 0 is 256, expected an integer in \[0, 255\]/);
    assert.throws(() => jsonDataToBuffer('INT32', [1], [1.5], 'x'), /expected an integer/);
    assert.throws(() => jsonDataToBuffer('BOOL', [1], [1], 'x'), /true or false/);
    assert.throws(() => jsonDataToBuffer('BYTES', [1], [5], 'x'), /a string for BYTES/);
    assert.throws(() => jsonDataToBuffer('FP32', [3], [1, 2], 'x'), /needs 3 elements, 'data' has 2/);
    assert.throws(() => jsonDataToBuffer('FP32', [1], 5, 'x'), /'data' must be an array/);
  });

  it('reads misaligned views and writes non-finite floats as null', () => {
    const raw = Buffer.concat([Buffer.from([9]), jsonDataToBuffer('FP32', [2], [1.5, 2.5], 'x')]).subarray(1);
    assert.equal(bufferToJsonData('FP32', raw), '[1.5,2.5]');
    const nan = Buffer.from(new Float32Array([NaN, Infinity]).buffer);
    assert.equal(bufferToJsonData('FP32', nan), '[null,null]');
  });

  it('encodes BYTES as 4-byte length-prefixed elements and detects truncation', () => {
    const raw = encodeBytesElements(['ab', Buffer.from([0xff])]);
    assert.equal(raw.toString('hex'), '020000006162' + '01000000ff');
    assert.deepEqual(decodeBytesElements(raw).map((b) => b.toString('hex')), ['6162', 'ff']);
    assert.throws(() => decodeBytesElements(raw.subarray(0, 5), 'T'), /BYTES data of 'T' is truncated: element 0 declares 2 bytes but 1 remain/);
    assert.throws(() => decodeBytesElements(raw.subarray(0, 8), 'T'), /element 1 has an incomplete 4-byte length/);
  });
});

describe('tensor rows', () => {
  it('concatenates along the batch dimension and splits back into views', async () => {
    const { concatRows, splitRows } = await import('../src/protocol/tensor.js');
    const a = { name: 'x', datatype: 'INT32' as const, shape: [1, 2], data: jsonDataToBuffer('INT32', [1, 2], [1, 2], 'x') };
    const b = { name: 'x', datatype: 'INT32' as const, shape: [2, 2], data: jsonDataToBuffer('INT32', [2, 2], [3, 4, 5, 6], 'x') };
    const joined = concatRows([a, b]);
    assert.deepEqual(joined.shape, [3, 2]);
    assert.equal(concatRows([a]), a);
    const [pa, pb] = splitRows(joined, [1, 2]);
    assert.deepEqual(JSON.parse(bufferToJsonData('INT32', pa!.data)), [1, 2]);
    assert.deepEqual(pb!.shape, [2, 2]);
    assert.deepEqual(JSON.parse(bufferToJsonData('INT32', pb!.data)), [3, 4, 5, 6]);
    assert.equal(pb!.data.buffer, joined.data.buffer, 'a view, not a copy');
    assert.throws(() => splitRows(joined, [1, 1]), /has 3 rows, the batch had 2/);
    const s = { name: 's', datatype: 'BYTES' as const, shape: [3, 1], data: encodeBytesElements(['a', 'bcd', '']) };
    const parts = splitRows(s, [2, 1]);
    assert.deepEqual(decodeBytesElements(parts[0]!.data).map(String), ['a', 'bcd']);
    assert.deepEqual(decodeBytesElements(parts[1]!.data).map(String), ['']);
    assert.throws(() => splitRows({ ...s, data: s.data.subarray(0, 6) }, [2, 1]), /shorter than its shape says/);
  });
});
