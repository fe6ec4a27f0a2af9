import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { ConfigError } from '../src/errors.js';
import { ROOT } from './helpers.js';

describe('config', () => {
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

  it('has documented defaults', () => {
    const c = loadConfig({ file: write(''), env: {} });
    assert.equal(c.http.port, 8000);
    assert.equal(c.grpc.port, 8001);
    assert.equal(c.model_repository, './model-repository');
    assert.equal(c.redis_url, 'redis://127.0.0.1:6379');
    assert.deepEqual(c.models.startup, ['*']);
    assert.equal(c.workers.spawn, 2);
  });

  it('reads the bundled config file', () => {
    const c = loadConfig({ file: path.join(ROOT, 'worker-config', 'inferneo.yaml'), env: {} });
    assert.equal(c.http.port, 8000);
  });

  it('lets the environment override the file', () => {
    const c = loadConfig({
      file: write('http:\n  port: 9000\n'),
      env: {
        INFERNEO_HTTP_PORT: '9100',
        INFERNEO_GRPC_PORT: '9101',
        INFERNEO_MODEL_REPOSITORY: '/models',
        INFERNEO_ADMIN_TOKEN: 'secret',
        REDIS_URL: 'redis://redis:6379/2',
        INFERNEO_STARTUP_MODELS: 'a, b',
      },
    });
    assert.equal(c.http.port, 9100);
    assert.equal(c.grpc.port, 9101);
    assert.equal(c.model_repository, '/models');
    assert.equal(c.admin_token, 'secret');
    assert.equal(c.redis_url, 'redis://redis:6379/2');
    assert.deepEqual(c.models.startup, ['a', 'b']);
  });

  it('has batch-job settings with defaults, overridden by INFERNEO_JOB_*', () => {
    const defaults = loadConfig({ file: write(''), env: {} }).jobs;
    assert.equal(defaults.workers, true);
    assert.equal(defaults.concurrency, 2);
    assert.equal(defaults.ttl_s, 86_400);
    assert.equal(defaults.lock_ms, 30_000);
    const c = loadConfig({
      file: write('jobs:\n  concurrency: 4\n  rows_in_flight: 64\n'),
      env: { INFERNEO_JOB_WORKERS: 'false', INFERNEO_JOB_RATE_LIMIT: '10', INFERNEO_JOB_TTL_S: '60', INFERNEO_JOB_SPOOL_DIR: '/tmp/s', INFERNEO_JOB_MAX_UPLOAD_BYTES: '2048', INFERNEO_JOB_CONCURRENCY: '8' },
    }).jobs;
    assert.deepEqual([c.workers, c.concurrency, c.rows_in_flight, c.rate_limit_chunks, c.ttl_s, c.spool_dir, c.max_upload_bytes], [false, 8, 64, 10, 60, '/tmp/s', 2048]);
    assert.throws(() => loadConfig({ file: write('jobs:\n  lock_ms: 10\n'), env: {} }), /jobs\.lock_ms = 10 .*Too small/);
  });

  it('names the key, the source and the bad value', () => {
    assert.throws(() => loadConfig({ file: write(''), env: { INFERNEO_HTTP_PORT: 'eighty' } }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /http\.port = "eighty" \(from INFERNEO_HTTP_PORT\)/);
      return true;
    });
    assert.throws(() => loadConfig({ file: write('http:\n  port: 70000\n'), env: {} }), /http\.port = 70000 \(from .*inferneo\.yaml\)/);
    assert.throws(() => loadConfig({ file: write('redis_url: localhost\n'), env: {} }), /redis_url = "localhost" .*redis:\/\//);
    assert.throws(() => loadConfig({ file: write('htp:\n  port: 1\n'), env: {} }), /unknown key 'htp'/);
    assert.throws(() => loadConfig({ file: write('workers:\n  heartbeat_interval_ms: 5000\n'), env: {} }), /workers\.heartbeat_timeout_ms .*must be larger/);
    assert.throws(() => loadConfig({ file: write('a: [\n'), env: {} }), /not valid YAML/);
    assert.throws(() => loadConfig({ file: write('- 1\n'), env: {} }), /must hold a YAML mapping/);
    assert.throws(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }), /cannot read config file/);
  });

  it('uses INFERNEO_CONFIG when no file is given', () => {
    const c = loadConfig({ env: { INFERNEO_CONFIG: write('grpc:\n  port: 7001\n') } });
    assert.equal(c.grpc.port, 7001);
  });
});
