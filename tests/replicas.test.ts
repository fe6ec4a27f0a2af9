import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { admin, inferOnce, startStack, waitFor } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * Two orchestrators on different ports sharing one Redis see each other's changes within a second,
 * and a restarted orchestrator finds its registry and routes again.
 */
describe('replicas sharing one Redis (real workers)', function () {
  this.timeout(180_000);
  const prefix = `inferneo-replicas-${randomUUID().slice(0, 8)}:`;
  const stacks: Stack[] = [];
  const start = async (): Promise<Stack> => {
    const s = await startStack((c) => {
      c.workers.spawn = 1;
      c.redis_prefix = prefix;
    });
    stacks.push(s);
    return s;
  };
  after(async () => {
    for (const s of stacks) await s.close();
  });

  it('propagates route changes and version states to the other orchestrator within one second', async () => {
    const a = await start();
    const b = await start();
    assert.notEqual(a.httpPort, b.httpPort);
    const put = await admin(a.url, 'PUT', '/routes/shared', { arms: [{ name: 'one', model: 'classifier', version: '1', weight: 100 }] });
    assert.equal(put.status, 200);
    const t0 = performance.now();
    await waitFor('B to see the route', () => b.router.find('shared') !== undefined, 1000);
    console.log(`      route visible on the other orchestrator after ${(performance.now() - t0).toFixed(1)} ms`);
    assert.equal((await admin(b.url, 'GET', '/routes/shared')).status, 200);
    assert.equal((await inferOnce(b.url, 'shared')).arm, 'one');

    await admin(b.url, 'PUT', '/routes/shared', { arms: [{ name: 'one', model: 'classifier', version: '1', weight: 0 }, { name: 'two', model: 'classifier', version: '2', weight: 100 }] });
    await waitFor('A to see the new weights', () => a.router.find('shared')?.arms.length === 2, 1000);
    assert.equal((await inferOnce(a.url, 'shared')).arm, 'two');

    // A version unloaded through A is unloaded on B's workers as well.
    assert.equal((await admin(a.url, 'POST', '/models/text_stats/versions/1/unload')).status, 200);
    await waitFor('B to unload text_stats', () => !b.registry.isServing('text_stats', '1'), 1000);
    assert.equal((await admin(b.url, 'POST', '/models/text_stats/versions/1/load')).status, 200);
    await waitFor('A to load text_stats again', () => a.registry.isServing('text_stats', '1'), 5000);
  });

  it('keeps models, versions and routes across a restart', async () => {
    const before = stacks[0]!;
    await admin(before.url, 'POST', '/models/classifier/versions/2/pin');
    for (const s of stacks.splice(0)) await s.close();
    const again = await start();
    const route = await admin<{ arms: { name: string; weight: number }[] }>(again.url, 'GET', '/routes/shared');
    assert.deepEqual(route.body.arms.map((x) => [x.name, x.weight]), [['one', 0], ['two', 100]]);
    const v2 = await admin<{ state: string; pinned: boolean; serving: boolean }>(again.url, 'GET', '/models/classifier/versions/2');
    assert.deepEqual([v2.body.state, v2.body.pinned, v2.body.serving], ['ready', true, true]);
    assert.equal((await inferOnce(again.url, 'shared')).version, '2');
  });
});
