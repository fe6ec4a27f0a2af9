import assert from 'node:assert/strict';
import { normaliseEndpoint, resolveTritonOptions } from '../src/backends/triton/triton-options.js';
import { ConfigError } from '../src/errors.js';

describe('triton-options', () => {
  it('applies the documented defaults', () => {
    assert.deepEqual(resolveTritonOptions({ endpoints: ['http://triton:8000/'] }), {
      endpoints: ['http://triton:8000'],
      protocol: 'http',
      requestTimeoutMs: 60_000,
      loadTimeoutMs: 120_000,
      probeTimeoutMs: 2_000,
      retry: { retries: 2, backoffMs: 50, maxBackoffMs: 1000 },
      breaker: { failures: 5, cooldownMs: 5000 },
      connections: 32,
      inflightPerInstance: 4,
    });
  });

  it('normalises endpoints per protocol and drops duplicates', () => {
    assert.deepEqual(resolveTritonOptions({ endpoints: ['grpc://a:8001', 'a:8001', 'b:8001/'], protocol: 'grpc' }).endpoints, ['a:8001', 'b:8001']);
    assert.equal(normaliseEndpoint(' https://t.example:443 ', 'http'), 'https://t.example');
  });

  it('refuses bad values with a message naming them', () => {
    const bad: [Parameters<typeof resolveTritonOptions>[0], RegExp][] = [
      [{ endpoints: [] }, /at least one endpoint/],
      [{ endpoints: ['not a url'] }, /"not a url" is not an HTTP URL/],
      [{ endpoints: ['triton:8000'] }, /"triton:8000" must be http/],
      [{ endpoints: ['ftp://triton:8000'] }, /must be http\(s\):\/\/host:port without a path/],
      [{ endpoints: ['http://triton:8000/v2'] }, /without a path/],
      [{ endpoints: ['http://triton:8001'], protocol: 'grpc' }, /not a gRPC address; expected host:port/],
      [{ endpoints: ['t:1'], protocol: 'tcp' as 'grpc' }, /protocol must be 'http' or 'grpc', got "tcp"/],
      [{ endpoints: ['http://t:1'], retry: { retries: -1 } }, /retries must be an integer >= 0, got -1/],
      [{ endpoints: ['http://t:1'], breaker: { failures: 0 } }, /breaker.failures must be an integer >= 1, got 0/],
      [{ endpoints: ['http://t:1'], requestTimeoutMs: 1.5 }, /request_timeout_ms/],
      [{ endpoints: ['http://t:1'], retry: { backoffMs: 500, maxBackoffMs: 100 } }, /retry_max_backoff_ms \(100\) must be >= retry_backoff_ms \(500\)/],
    ];
    for (const [options, message] of bad) assert.throws(() => resolveTritonOptions(options), (err: Error) => err instanceof ConfigError && message.test(err.message));
  });
});
