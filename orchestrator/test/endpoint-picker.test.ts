import assert from 'node:assert/strict';
import { LeastOutstandingPicker } from '../src/backends/triton/endpoint-picker.js';

describe('endpoint-picker', () => {
  it('picks the endpoint with the fewest requests in flight', () => {
    const picker = new LeastOutstandingPicker();
    const endpoints = [
      { name: 'a', outstanding: 3 },
      { name: 'b', outstanding: 1 },
      { name: 'c', outstanding: 2 },
    ];
    for (let i = 0; i < 6; i++) assert.equal(picker.pick(endpoints).name, 'b');
  });

  it('shares ties round-robin', () => {
    const picker = new LeastOutstandingPicker();
    const endpoints = ['a', 'b', 'c'].map((name) => ({ name, outstanding: 0 }));
    assert.deepEqual(
      Array.from({ length: 6 }, () => picker.pick(endpoints).name),
      ['a', 'b', 'c', 'a', 'b', 'c'],
    );
    assert.equal(picker.pick([{ name: 'only', outstanding: 9 }]).name, 'only');
  });
});
