import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { ConfigError } from '../src/errors.js';

describe('config: triton', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (text: string): string => {
    const file = path.join(dir, 'inferneo.yaml');
    writeFileSync(file, text);
    return file;
  };

  it('has no Triton by default, with documented defaults for the rest', () => {
    const t = loadConfig({ file: write(''), env: {} }).triton;
    assert.deepEqual(t, {
      endpoints: [],
      protocol: 'http',
      models: [],
      request_timeout_ms: 60_000,
      load_timeout_ms: 120_000,
      retries: 2,
      retry_backoff_ms: 50,
      retry_max_backoff_ms: 1000,
      breaker: { failures: 5, cooldown_ms: 5000 },
      connections: 32,
      inflight_per_instance: 4,
    });
  });

  it('reads the file and lets INFERNEO_TRITON_* override it', () => {
    const file = write('triton:\n  endpoints: ["http://a:8000"]\n  models: [x]\n  breaker: { failures: 2, cooldown_ms: 100 }\n');
    assert.deepEqual(loadConfig({ file, env: {} }).triton.breaker, { failures: 2, cooldown_ms: 100 });
    const t = loadConfig({ file, env: { INFERNEO_TRITON_URLS: 'triton:8001, grpc://other:8001', INFERNEO_TRITON_PROTOCOL: 'grpc', INFERNEO_TRITON_MODELS: 'a,b' } }).triton;
    assert.deepEqual(t.endpoints, ['triton:8001', 'grpc://other:8001']);
    assert.equal(t.protocol, 'grpc');
    assert.deepEqual(t.models, ['a', 'b']);
  });

  it('names the bad key, its source and value', () => {
    const bad: [Record<string, string>, string, RegExp][] = [
      [{ INFERNEO_TRITON_URLS: 'triton:8000' }, '', /triton\.endpoints\.0 = "triton:8000" \(from .*\): expected http:\/\/host:port for protocol http/],
      [{ INFERNEO_TRITON_URLS: 'http://t:8000', INFERNEO_TRITON_PROTOCOL: 'grpc' }, '', /triton\.endpoints\.0 = "http:\/\/t:8000".*expected host:port for protocol grpc/],
      [{ INFERNEO_TRITON_PROTOCOL: 'tcp' }, '', /triton\.protocol = "tcp" \(from INFERNEO_TRITON_PROTOCOL\)/],
      [{ INFERNEO_TRITON_MODELS: 'a' }, '', /triton\.models .*names models served by Triton, but triton\.endpoints is empty/],
      [{}, 'triton:\n  retry_backoff_ms: 500\n  retry_max_backoff_ms: 100\n', /triton\.retry_max_backoff_ms = 100 .*must be at least triton\.retry_backoff_ms \(500\)/],
      [{}, 'triton:\n  breaker: { failures: 0 }\n', /triton\.breaker\.failures = 0/],
      [{}, 'triton:\n  endpoint: x\n', /unknown key 'endpoint' in 'triton'/],
    ];
    for (const [env, text, message] of bad) {
      assert.throws(() => loadConfig({ file: write(text), env }), (err: Error) => err instanceof ConfigError && message.test(err.message), `${JSON.stringify(env)} ${text}`);
    }
  });
});
