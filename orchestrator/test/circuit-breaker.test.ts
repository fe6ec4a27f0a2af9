import assert from 'node:assert/strict';
import { CircuitBreaker, CircuitState } from '../src/backends/triton/circuit-breaker.js';
import { ErrorCode } from '../src/errors.js';
import { ManualClock } from '../src/scheduling/clock.js';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(probe: () => Promise<void> = async () => undefined): { clock: ManualClock; breaker: CircuitBreaker; states: string[] } {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ name: 'http://t:8000', failures: 3, cooldownMs: 1000, probe, clock });
  const states: string[] = [];
  breaker.on('state', (state, previous, reason) => states.push(`${previous}→${state}${reason !== undefined ? ` (${reason})` : ''}`));
  return { clock, breaker, states };
}

describe('circuit-breaker', () => {
  it('opens after N consecutive failures; a success in between starts the count again', () => {
    const { breaker, states } = setup();
    breaker.failure('a');
    breaker.failure('b');
    breaker.success();
    assert.equal(breaker.failureCount, 0);
    breaker.failure('c');
    breaker.failure('d');
    assert.equal(breaker.state, CircuitState.CLOSED);
    assert.ok(breaker.allowsCalls);
    breaker.failure('e');
    assert.equal(breaker.state, CircuitState.OPEN);
    assert.ok(!breaker.allowsCalls);
    assert.equal(breaker.lastError, 'e');
    assert.deepEqual(states, ['closed→open (e)']);
  });

  it('answers calls while open with 503 UNAVAILABLE naming the endpoint, the count, the wait and the last error', () => {
    const { clock, breaker } = setup(() => new Promise(() => undefined));
    for (const r of ['x', 'y', 'connect ECONNREFUSED']) breaker.failure(r);
    clock.advance(400);
    const err = breaker.unavailable();
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.equal(err.httpStatus, 503);
    assert.equal(err.message, 'Triton endpoint http://t:8000 is unavailable (circuit open after 3 consecutive failure(s); next probe in 600 ms): connect ECONNREFUSED');
    clock.advance(600);
    assert.equal(breaker.state, CircuitState.HALF_OPEN);
    assert.match(breaker.unavailable().message, /circuit half-open .*; a probe is running\)/);
  });

  it('probes after the cool-down: success closes the circuit, failure opens it for another cool-down', async () => {
    let ok = false;
    let probes = 0;
    const { clock, breaker, states } = setup(async () => {
      probes++;
      if (!ok) throw new Error('still down');
    });
    breaker.trip('restarted');
    assert.equal(breaker.state, CircuitState.OPEN);
    clock.advance(999);
    assert.equal(probes, 0);
    clock.advance(1);
    await flush();
    assert.equal(probes, 1);
    assert.equal(breaker.state, CircuitState.OPEN);
    assert.equal(breaker.lastError, 'probe failed: still down');
    ok = true;
    clock.advance(1000);
    await flush();
    assert.equal(breaker.state, CircuitState.CLOSED);
    assert.equal(breaker.failureCount, 0);
    assert.equal(clock.pendingTimers, 0);
    assert.deepEqual(states, [
      'closed→open (restarted)',
      'open→half-open (restarted)',
      'half-open→open (probe failed: still down)',
      'open→half-open (probe failed: still down)',
      'half-open→closed',
    ]);
    // Failures while not closed do not open it twice.
    breaker.trip('again');
    breaker.trip('and again');
    breaker.failure('more');
    assert.equal(states.filter((s) => s.endsWith('→open (again)')).length, 1);
  });

  it('keeps a probe that rejects with a non-Error readable', async () => {
    const { clock, breaker } = setup(() => Promise.reject('nope'));
    breaker.trip('x');
    clock.advance(1000);
    await flush();
    assert.equal(breaker.lastError, 'probe failed: nope');
  });

  it('stops its timer on dispose, and changes state no more', async () => {
    let release: () => void = () => undefined;
    const { clock, breaker } = setup(() => new Promise<void>((r) => (release = r)));
    breaker.trip('x');
    breaker.dispose();
    assert.equal(clock.pendingTimers, 0);
    clock.advance(5000);
    assert.equal(breaker.state, CircuitState.OPEN);
    // Disposed during a probe: the probe's end changes nothing.
    const second = setup(() => new Promise<void>((r) => (release = r)));
    second.breaker.trip('y');
    second.clock.advance(1000);
    second.breaker.dispose();
    release();
    await flush();
    assert.equal(second.breaker.state, CircuitState.HALF_OPEN);
    second.breaker.dispose();
  });
});
