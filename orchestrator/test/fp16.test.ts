import assert from 'node:assert/strict';
import { float32ToHalfBits, halfBitsToFloat } from '../src/protocol/fp16.js';
import { python } from './helpers.js';

describe('fp16', () => {
  it('converts known values', () => {
    assert.equal(float32ToHalfBits(1), 0x3c00);
    assert.equal(float32ToHalfBits(-2), 0xc000);
    assert.equal(float32ToHalfBits(65504), 0x7bff);
    assert.equal(float32ToHalfBits(65536), 0x7c00);
    assert.equal(float32ToHalfBits(-Infinity), 0xfc00);
    assert.equal(float32ToHalfBits(2 ** -24), 0x0001);
    assert.equal(float32ToHalfBits(2 ** -26), 0x0000);
    assert.equal(float32ToHalfBits(-0), 0x8000);
    assert.ok(Number.isNaN(halfBitsToFloat(float32ToHalfBits(NaN))));
    assert.equal(halfBitsToFloat(0x3c00), 1);
    assert.equal(halfBitsToFloat(0x0001), 2 ** -24);
    assert.equal(halfBitsToFloat(0xfc00), -Infinity);
  });

  it('rounds exactly like numpy, subnormals and ties included', () => {
    const values: number[] = [0.1, 1 / 3, 65519, 65520, 1e-5, 6e-8, 3e-8, 2049, 2051, -0.333, 5.960464477539063e-8];
    let seed = 42;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 2000; i++) values.push((rand() - 0.5) * 10 ** (rand() * 12 - 8));
    const f32 = Float32Array.from(values);
    const expected = python(
      'import sys, numpy as np; a = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4"); print(",".join(str(int(x)) for x in a.astype(np.float16).view(np.uint16)))',
      Buffer.from(f32.buffer),
    )
      .trim()
      .split(',')
      .map(Number);
    const actual = Array.from(f32, float32ToHalfBits);
    assert.deepEqual(actual, expected);
    for (const bits of expected) {
      const back = halfBitsToFloat(bits);
      assert.equal(float32ToHalfBits(back), bits);
    }
  });
});
