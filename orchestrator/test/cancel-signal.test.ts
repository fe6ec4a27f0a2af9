import assert from 'node:assert/strict';
import { CancelSource, fromAbortSignal } from '../src/scheduling/cancel-signal.js';

describe('cancel-signal', () => {
  it('calls each listener once, skips unsubscribed ones, and ignores a second cancel', () => {
    const source = new CancelSource();
    const calls: string[] = [];
    source.onCancel(() => calls.push('a'));
    const offB = source.onCancel(() => calls.push('b'));
    source.onCancel(() => calls.push('c'));
    offB();
    const offOnly = new CancelSource().onCancel(() => calls.push('never'));
    offOnly();
    source.cancel();
    source.cancel();
    assert.deepEqual(calls, ['a', 'c']);
    assert.equal(source.aborted, true);
  });

  it('adapts an AbortSignal', () => {
    const controller = new AbortController();
    const signal = fromAbortSignal(controller.signal);
    let called = 0;
    const off = signal.onCancel(() => called++);
    signal.onCancel(() => called++);
    off();
    assert.equal(signal.aborted, false);
    controller.abort();
    assert.equal(signal.aborted, true);
    assert.equal(called, 1);
  });
});
