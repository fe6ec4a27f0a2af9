import assert from 'node:assert/strict';
import { admin, inferOnce, startStack, waitFor } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Traffic splitting on a real stack: weights, stickiness, header rules, shadow, stats, promote/rollback, canary. */
describe('routes and traffic splitting (real workers)', function () {
  this.timeout(180_000);
  let stack: Stack;
  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 2;
    });
  });
  after(async () => {
    await stack?.close();
  });

  const putRoute = async (name: string, spec: unknown): Promise<void> => {
    const res = await admin(stack.url, 'PUT', `/routes/${name}`, spec);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };

  /** `total` requests through `route`, `concurrency` at a time; counts per arm. */
  const send = async (route: string, total: number, concurrency: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          const r = await inferOnce(stack.url, route, headers(i), i);
          assert.equal(r.status, 200, r.error);
          counts.set(r.arm!, (counts.get(r.arm!) ?? 0) + 1);
        }
      }),
    );
    return counts;
  };

  it('splits 10,000 requests 90/10 within ±2 points, and reports it per arm', async () => {
    await putRoute('split', { arms: [{ name: 'stable', model: 'classifier', version: '1', weight: 90 }, { name: 'canary', model: 'classifier', version: '2', weight: 10 }] });
    const counts = await send('split', 10_000, 32);
    const canaryShare = (counts.get('canary') ?? 0) / 10_000;
    assert.ok(Math.abs(canaryShare - 0.1) <= 0.02, `canary got ${(canaryShare * 100).toFixed(2)}%`);
    const stats = await admin<{ arms: { arm: string; requests: number; errors: number; latency_ms: { p50: number; p99: number } }[] }>(stack.url, 'GET', '/routes/split/stats');
    const byArm = new Map(stats.body.arms.map((a) => [a.arm, a]));
    assert.equal(byArm.get('stable')!.requests, counts.get('stable'));
    assert.equal(byArm.get('canary')!.requests, counts.get('canary'));
    assert.equal(byArm.get('canary')!.errors, 0);
    assert.ok(byArm.get('stable')!.latency_ms.p50 > 0 && byArm.get('stable')!.latency_ms.p99 >= byArm.get('stable')!.latency_ms.p50);
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`inferneo_route_requests_total\\{route="split",arm="canary",model="classifier",version="2",outcome="success"\\} ${counts.get('canary')}`));
    const p99 = metrics.split('\n').find((l) => l.startsWith('inferneo_route_request_duration_seconds{') && l.includes('route="split"') && l.includes('arm="stable"') && l.includes('quantile="0.99"'));
    assert.ok(p99 !== undefined && Number(p99.split(' ')[1]) > 0, 'p99 latency of the stable arm in /metrics');
  });

  it('keeps a sticky key on its arm while the weights stay, and moves few keys when they change', async () => {
    await putRoute('sticky', { sticky: true, arms: [{ name: 'a', model: 'classifier', version: '1', weight: 50 }, { name: 'b', model: 'classifier', version: '2', weight: 50 }] });
    const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const armOf = async (): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for (const key of keys) out.set(key, (await inferOnce(stack.url, 'sticky', { 'x-inferneo-route-key': key })).arm!);
      return out;
    };
    const first = await armOf();
    const again = await armOf();
    assert.deepEqual(again, first);
    assert.ok([...first.values()].filter((a) => a === 'b').length > 60, 'both arms get keys');
    await putRoute('sticky', { sticky: true, arms: [{ name: 'a', model: 'classifier', version: '1', weight: 60 }, { name: 'b', model: 'classifier', version: '2', weight: 40 }] });
    const after = await armOf();
    // Only keys from b to a may move; no key moves from a to b.
    for (const key of keys) if (first.get(key) === 'a') assert.equal(after.get(key), 'a', key);
    const moved = keys.filter((k) => first.get(k) !== after.get(k)).length;
    assert.ok(moved < 50, `${moved} of 200 keys moved for a 10-point change`);
  });

  it('forces an arm with x-inferneo-arm and with header rules', async () => {
    await putRoute('rules', {
      arms: [{ name: 'stable', model: 'classifier', version: '1', weight: 100 }, { name: 'canary', model: 'classifier', version: '2', weight: 0 }],
      rules: [{ header: 'X-User-Tier', equals: 'beta', arm: 'canary' }],
    });
    assert.equal((await inferOnce(stack.url, 'rules')).arm, 'stable');
    const forced = await inferOnce(stack.url, 'rules', { 'x-inferneo-arm': 'canary' });
    assert.equal(forced.arm, 'canary');
    assert.equal(forced.version, '2');
    assert.equal((await inferOnce(stack.url, 'rules', { 'x-user-tier': 'beta' })).arm, 'canary');
    const unknown = await inferOnce(stack.url, 'rules', { 'x-inferneo-arm': 'nope' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.error!, /x-inferneo-arm names arm 'nope', which route 'rules' does not have/);
    // A version in the URL bypasses the split.
    const direct = await fetch(`${stack.url}/v2/models/classifier/versions/1/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 16], data: Array(16).fill(0) }] }),
    });
    assert.equal(direct.headers.get('x-inferneo-arm'), 'classifier-v1');
  });

  it('mirrors a share of requests to the shadow without delaying or failing the client', async () => {
    await putRoute('mirror', { arms: [{ model: 'classifier', version: '1', weight: 1 }], shadow: { model: 'classifier', version: '2', percent: 50 } });
    const counts = await send('mirror', 400, 8);
    assert.equal(counts.get('classifier-v1'), 400);
    await waitFor('shadow requests to settle', () => true);
    await new Promise((r) => setTimeout(r, 300));
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    const mirrored = Number(/inferneo_route_shadow_requests_total\{route="mirror",model="classifier",version="2",outcome="success"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(mirrored > 120 && mirrored < 280, `mirrored ${mirrored} of 400 at 50%`);
    // A shadow that cannot serve (text model, wrong inputs) never shows to the client.
    await putRoute('mirror-bad', { arms: [{ model: 'classifier', version: '1', weight: 1 }], shadow: { model: 'text_stats', version: '1', percent: 100 } });
    const bad = await send('mirror-bad', 50, 4);
    assert.equal(bad.get('classifier-v1'), 50);
    await new Promise((r) => setTimeout(r, 200));
    assert.match(await (await fetch(`${stack.url}/metrics`)).text(), /inferneo_route_shadow_requests_total\{route="mirror-bad",model="text_stats",version="1",outcome="error"\} 50/);
  });

  it('promotes an arm and rolls back to the previous split', async () => {
    await putRoute('promo', { arms: [{ name: 'old', model: 'classifier', version: '1', weight: 80 }, { name: 'new', model: 'classifier', version: '2', weight: 20 }] });
    const promoted = await admin<{ arms: { name: string; weight: number }[] }>(stack.url, 'POST', '/routes/promo/promote', { arm: 'new' });
    assert.deepEqual(promoted.body.arms.map((a) => [a.name, a.weight]), [['old', 0], ['new', 100]]);
    assert.equal((await send('promo', 30, 4)).get('new'), 30);
    const back = await admin<{ arms: { name: string; weight: number }[] }>(stack.url, 'POST', '/routes/promo/rollback');
    assert.deepEqual(back.body.arms.map((a) => [a.name, a.weight]), [['old', 80], ['new', 20]]);
    assert.equal((await admin(stack.url, 'POST', '/routes/promo/rollback')).status, 409);
    const badArm = await admin<{ error: string }>(stack.url, 'POST', '/routes/promo/promote', { arm: 'zzz' });
    assert.equal(badArm.status, 400);
    assert.match(badArm.body.error, /arm: route 'promo' has no arm 'zzz'/);
  });

  it('runs an automatic canary to completion, and rolls one back when it crosses a threshold', async () => {
    const arms = [{ name: 'stable', model: 'classifier', version: '1', weight: 100 }, { name: 'canary', model: 'classifier', version: '2', weight: 0 }];
    await putRoute('auto', { arms, canary: { arm: 'canary', steps: [25, 100], interval_s: 1, max_error_rate: 0.5, min_requests: 5 } });
    let running = true;
    const traffic = (async () => {
      while (running) await inferOnce(stack.url, 'auto');
    })();
    await waitFor('the canary to complete', () => stack.router.find('auto')?.canary?.status?.state === 'completed', 30_000);
    assert.deepEqual(stack.router.find('auto')!.arms.map((a) => a.weight), [0, 100]);

    await putRoute('auto-bad', { arms, canary: { arm: 'canary', steps: [50, 100], interval_s: 1, max_p95_ms: 0.001, min_requests: 5 } });
    const traffic2 = (async () => {
      while (running) await inferOnce(stack.url, 'auto-bad');
    })();
    await waitFor('the canary to roll back', () => stack.router.find('auto-bad')?.canary?.status?.state === 'rolled_back', 30_000);
    running = false;
    await Promise.all([traffic, traffic2]);
    const route = stack.router.find('auto-bad')!;
    assert.deepEqual(route.arms.map((a) => a.weight), [100, 0]);
    assert.match(route.canary!.status!.reason!, /p95 .* ms > 0.001 ms/);
  });
});
