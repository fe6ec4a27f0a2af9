import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { admin, inferOnce, MODEL_REPOSITORY, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface Outcome {
  status: number;
  version: string | undefined;
  startedAt: number;
  hung: boolean;
}

/**
 * Zero-downtime hot-swap under steady load: register v2, load it (warm-up), shift the route, drain
 * and unload v1 — not one request may fail or hang, and answers must switch from v1 to v2.
 */
describe('hot-swap under load (real workers)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let repo: string;

  before(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'inferneo-swap-'));
    const dir = path.join(repo, 'swap');
    mkdirSync(path.join(dir, '1'), { recursive: true });
    cpSync(path.join(MODEL_REPOSITORY, 'classifier', '1'), path.join(dir, '1'), { recursive: true });
    const config = readFileSync(path.join(MODEL_REPOSITORY, 'classifier', 'config.pbtxt'), 'utf8').replace(/^name:\s*"classifier"/m, 'name: "swap"');
    writeFileSync(path.join(dir, 'config.pbtxt'), config);
    stack = await startStack((c) => {
      c.workers.spawn = 2;
      c.model_repository = repo;
    });
  });
  after(async () => {
    await stack?.close();
    rmSync(repo, { recursive: true, force: true });
  });

  it('swaps v1 for v2 with no failed or hung request, and answers switch to v2', async () => {
    assert.equal((await admin(stack.url, 'PUT', '/routes/swap-route', { arms: [{ name: 'v1', model: 'swap', version: '1', weight: 100 }] })).status, 200);
    const outcomes: Outcome[] = [];
    let running = true;
    const clients = Array.from({ length: 8 }, async (_, c) => {
      let i = 0;
      while (running) {
        const startedAt = performance.now();
        const result = await Promise.race([
          inferOnce(stack.url, 'swap-route', {}, c * 100_000 + i++),
          new Promise<undefined>((r) => setTimeout(r, 10_000, undefined)),
        ]);
        outcomes.push(result === undefined ? { status: 0, version: undefined, startedAt, hung: true } : { status: result.status, version: result.version, startedAt, hung: false });
      }
    });
    await new Promise((r) => setTimeout(r, 500));

    const t0 = performance.now();
    cpSync(path.join(MODEL_REPOSITORY, 'classifier', '2'), path.join(repo, 'swap', '2'), { recursive: true });
    const registered = await admin<{ state: string }>(stack.url, 'POST', '/models/swap/versions', { version: '2' });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    const loaded = await admin<{ state: string }>(stack.url, 'POST', '/models/swap/versions/2/load');
    assert.equal(loaded.body.state, 'ready');
    const shifted = await admin(stack.url, 'PUT', '/routes/swap-route', {
      arms: [{ name: 'v1', model: 'swap', version: '1', weight: 0 }, { name: 'v2', model: 'swap', version: '2', weight: 100 }],
    });
    assert.equal(shifted.status, 200);
    const t1 = performance.now();
    const unloaded = await admin<{ state: string }>(stack.url, 'POST', '/models/swap/versions/1/unload');
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    assert.equal(unloaded.body.state, 'unloaded');
    const t2 = performance.now();
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await Promise.all(clients);

    const failed = outcomes.filter((o) => o.status !== 200);
    console.log(
      `      hot-swap: register → 100% on v2 in ${(t1 - t0).toFixed(0)} ms, v1 drained and unloaded ${(t2 - t1).toFixed(0)} ms later; ` +
        `${outcomes.length} requests during the test, ${failed.length} failed`,
    );
    assert.deepEqual(failed, [], 'no request fails or hangs');
    assert.ok(outcomes.some((o) => o.version === '1') && outcomes.some((o) => o.version === '2'));
    assert.deepEqual(outcomes.filter((o) => o.startedAt > t1 + 1).filter((o) => o.version !== '2'), [], 'every request sent after the shift is answered by v2');
    const v1 = await admin<{ state: string; serving: boolean }>(stack.url, 'GET', '/models/swap/versions/1');
    assert.equal(v1.body.serving, false);
  });

  it('leaves the serving version in place when the new one fails to load, marking it failed with the reason', async () => {
    mkdirSync(path.join(repo, 'swap', '3'));
    writeFileSync(path.join(repo, 'swap', '3', 'model.onnx'), 'this is not an ONNX file');
    assert.equal((await admin(stack.url, 'POST', '/models/swap/versions', { version: '3' })).status, 201);
    const load = await admin<{ error: string }>(stack.url, 'POST', '/models/swap/versions/3/load');
    assert.equal(load.status, 400);
    assert.match(load.body.error, /swap.*3/);
    const v3 = await admin<{ state: string; reason: string }>(stack.url, 'GET', '/models/swap/versions/3');
    assert.equal(v3.body.state, 'failed');
    assert.ok(v3.body.reason.length > 10, v3.body.reason);
    const ok = await inferOnce(stack.url, 'swap-route');
    assert.equal(ok.status, 200);
    assert.equal(ok.version, '2');
    const direct = await inferOnce(stack.url, 'swap', {});
    assert.equal(direct.version, '2', 'the model name alone serves its highest ready version');
    const refused = await fetch(`${stack.url}/v2/models/swap/versions/3/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array(16).fill(0) }] }),
    });
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as { error: string }).error, /failed to load/);
  });
});
