import assert from 'node:assert/strict';
import { pickSticky, pickWeighted, unitHash } from '../src/routing/traffic-split.js';

describe('traffic-split', () => {
  const arms = [
    { name: 'a', weight: 70 },
    { name: 'b', weight: 20 },
    { name: 'c', weight: 10 },
    { name: 'off', weight: 0 },
  ];

  it('picks weighted-random arms in proportion to their weights and never a zero-weight arm', () => {
    let seed = 1;
    const random = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    const counts = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const arm = pickWeighted(arms, random)!.name;
      counts.set(arm, (counts.get(arm) ?? 0) + 1);
    }
    assert.ok(Math.abs(counts.get('a')! / 1000 - 70) < 1);
    assert.ok(Math.abs(counts.get('b')! / 1000 - 20) < 1);
    assert.ok(Math.abs(counts.get('c')! / 1000 - 10) < 1);
    assert.equal(counts.get('off'), undefined);
    assert.equal(pickWeighted([{ name: 'x', weight: 0 }]), undefined);
    const only = [{ name: 'x', weight: 1 }];
    assert.equal(pickWeighted(only, () => 0.999999999), only[0]);
  });

  it('gives sticky keys arms in proportion to the weights, the same arm every time', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 50_000; i++) {
      const key = `key-${i}`;
      const arm = pickSticky(arms, key)!.name;
      assert.equal(pickSticky(arms, key)!.name, arm);
      counts.set(arm, (counts.get(arm) ?? 0) + 1);
    }
    assert.ok(Math.abs(counts.get('a')! / 500 - 70) < 1.5, `a: ${counts.get('a')! / 500}%`);
    assert.ok(Math.abs(counts.get('c')! / 500 - 10) < 1.5, `c: ${counts.get('c')! / 500}%`);
    assert.equal(counts.get('off'), undefined);
    assert.equal(pickSticky([], 'k'), undefined);
  });

  it('moves only the keys it must when one weight changes (consistent hashing)', () => {
    const after = [
      { name: 'a', weight: 70 },
      { name: 'b', weight: 20 },
      { name: 'c', weight: 20 },
    ];
    let moved = 0;
    for (let i = 0; i < 20_000; i++) {
      const key = `key-${i}`;
      const from = pickSticky(arms, key)!.name;
      const to = pickSticky(after, key)!.name;
      if (from !== to) {
        moved++;
        assert.equal(to, 'c', 'raising c only moves keys to c');
      }
    }
    // c goes from 10% to 18.2% of the traffic: about 8.2% of keys must move, and no more.
    assert.ok(Math.abs(moved / 200 - 8.2) < 1, `${moved / 200}% moved`);
  });

  it('hashes to (0, 1) uniformly', () => {
    let sum = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = unitHash(`k${i}`, 'arm');
      assert.ok(u > 0 && u < 1);
      sum += u;
    }
    assert.ok(Math.abs(sum / 10_000 - 0.5) < 0.01);
  });
});
