import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { admin, features, MODEL_REPOSITORY, ROOT, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * ModelMesh-style lazy loading and eviction with a real worker under a memory budget: three
 * versions of a ~21 MB model, room for two (~20 MB on disk, 24-36 MB resident); the least recently used idle, unpinned one goes first.
 */
describe('lazy loading and LRU eviction (real worker)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let dir: string;
  let loads = 0;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-lazy-'));
    const repo = path.join(dir, 'repo');
    for (const v of ['1', '2', '3']) {
      mkdirSync(path.join(repo, 'big', v), { recursive: true });
      cpSync(path.join(MODEL_REPOSITORY, 'mlp_wide', '1', 'model.onnx'), path.join(repo, 'big', v, 'model.onnx'));
    }
    const config = readFileSync(path.join(MODEL_REPOSITORY, 'mlp_wide', 'config.pbtxt'), 'utf8')
      .replace(/^name:\s*"mlp_wide"/m, 'name: "big"')
      .replace(/version_policy[^\n]*\n/, '');
    writeFileSync(path.join(repo, 'big', 'config.pbtxt'), `${config}\nversion_policy: { all { } }\n`);
    const workerConfig = readFileSync(path.join(ROOT, 'worker-config', 'worker.yaml'), 'utf8').replace(/^memory_budget_mb:.*$/m, 'memory_budget_mb: 90');
    writeFileSync(path.join(dir, 'worker.yaml'), workerConfig);
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.model_repository = repo;
      c.workers.config = path.join(dir, 'worker.yaml');
      c.models.startup = [];
    });
    const request = stack.pool.request.bind(stack.pool);
    // Observes the load messages sent to the real worker (the call itself is unchanged).
    stack.pool.request = (session, message, timeout) => {
      if (message['type'] === 'load') loads++;
      return request(session, message, timeout);
    };
  });
  after(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const infer = async (version: string): Promise<{ status: number; error?: string }> => {
    const res = await fetch(`${stack.url}/v2/models/big/versions/${version}/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 512], data: Array.from(features(512, 3)) }] }),
    });
    const body = (await res.json()) as { error?: string };
    return body.error === undefined ? { status: res.status } : { status: res.status, error: body.error };
  };
  const state = async (version: string): Promise<{ state: string; reason?: string; serving: boolean }> =>
    (await admin<{ state: string; reason?: string; serving: boolean }>(stack.url, 'GET', `/models/big/versions/${version}`)).body;

  it('registers without loading, then loads on the first requests — once for many concurrent ones', async () => {
    for (const v of ['1', '2', '3']) assert.equal((await state(v)).state, 'registered');
    const results = await Promise.all(Array.from({ length: 6 }, () => infer('1')));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assert.equal(loads, 1, 'six concurrent first requests trigger one load');
    assert.equal((await state('1')).state, 'ready');
  });

  it('evicts the least recently used idle version when a load would exceed the budget', async () => {
    assert.equal((await infer('2')).status, 200);
    assert.equal((await infer('1')).status, 200); // v1 is now more recently used than v2
    assert.equal((await infer('3')).status, 200);
    const [v1, v2, v3] = [await state('1'), await state('2'), await state('3')];
    assert.deepEqual([v1.serving, v2.serving, v3.serving], [true, false, true]);
    assert.equal(v2.state, 'unloaded');
    assert.match(v2.reason!, /evicted from worker .* \(least recently used\) to make room for big v3/);
  });

  it('never evicts a pinned version, and says so when nothing can make room', async () => {
    assert.equal((await admin(stack.url, 'POST', '/models/big/versions/1/pin')).status, 200);
    assert.equal((await infer('3')).status, 200);
    assert.equal((await infer('2')).status, 200); // needs room: v1 is pinned, so v3 goes although v1 is older
    assert.deepEqual([(await state('1')).serving, (await state('2')).serving, (await state('3')).serving], [true, true, false]);
    assert.equal((await admin(stack.url, 'POST', '/models/big/versions/2/pin')).status, 200);
    const refused = await infer('3');
    assert.equal(refused.status, 503);
    assert.match(refused.error!, /no room for big v3 .* held by big v1 \(pinned.*big v2 \(pinned/);
    assert.equal((await state('3')).state, 'unloaded', 'no room is not a failure of the model');
    assert.equal((await admin(stack.url, 'POST', '/models/big/versions/2/unpin')).status, 200);
    assert.equal((await infer('3')).status, 200);
  });
});
