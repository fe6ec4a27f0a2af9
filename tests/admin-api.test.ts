import assert from 'node:assert/strict';
import { admin, inferOnce, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** The admin API on a real stack: auth, OpenAPI, registry operations, validation, conflicts, audit. */
describe('admin API (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
    });
  });
  after(async () => {
    await stack?.close();
  });

  describe('auth', () => {
    it('401 without a token, 403 with a wrong one, 200 with the right one', async () => {
      const none = await admin(stack.url, 'GET', '/models', undefined, null);
      assert.equal(none.status, 401);
      assert.match((none.body as { error: string }).error, /missing bearer token/);
      const wrong = await admin(stack.url, 'GET', '/models', undefined, 'nope');
      assert.equal(wrong.status, 403);
      assert.match((wrong.body as { error: string }).error, /not the admin token/);
      const basic = await fetch(`${stack.url}/admin/models`, { headers: { authorization: 'Basic dGVzdA==' } });
      assert.equal(basic.status, 401);
      assert.equal(basic.headers.get('www-authenticate'), 'Bearer realm="inferneo-admin"');
      assert.equal((await admin(stack.url, 'GET', '/models')).status, 200);
      // Every endpoint sits behind the token, even unknown ones.
      assert.equal((await admin(stack.url, 'GET', '/nothing-here', undefined, null)).status, 401);
      assert.equal((await admin(stack.url, 'GET', '/nothing-here')).status, 404);
    });
  });

  it('serves an OpenAPI 3.1 document generated from the request schemas', async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: { properties?: Record<string, unknown>; required?: string[] } } } } }>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/admin/models', '/admin/models/{model}', '/admin/models/{model}/versions', '/admin/models/{model}/versions/{version}/load', '/admin/routes/{route}', '/admin/routes/{route}/stats', '/admin/routes/{route}/promote', '/admin/routes/{route}/rollback']) {
      assert.ok(doc.paths[p], `missing ${p}`);
    }
    const put = doc.paths['/admin/routes/{route}']!['put']!.requestBody!.content['application/json'].schema;
    assert.deepEqual(put.required, ['arms']);
    assert.ok(put.properties?.['shadow'] && put.properties['canary'] && put.properties['sticky']);
  });

  it('lists models with their versions and states; auto-registered from the repository', async () => {
    const { status, body } = await admin<{ name: string; versions: { version: string; state: string; serving: boolean }[] }[]>(stack.url, 'GET', '/models');
    assert.equal(status, 200);
    const classifier = body.find((m) => m.name === 'classifier')!;
    assert.deepEqual(classifier.versions.map((v) => [v.version, v.state, v.serving]), [['1', 'ready', true], ['2', 'ready', true]]);
    const one = await admin<{ config: { max_batch_size: number } }>(stack.url, 'GET', '/models/classifier');
    assert.equal(one.body.config.max_batch_size, 64);
  });

  const badRoutes: [string, unknown, RegExp][] = [
    ['a negative weight', { arms: [{ model: 'classifier', version: '1', weight: -1 }] }, /arms\[0\]\.weight: Too small/],
    ['weights that add up to 0', { arms: [{ model: 'classifier', version: '1', weight: 0 }] }, /arms: the weights add up to 0/],
    ['an arm on a missing model', { arms: [{ model: 'nope', version: '1', weight: 1 }] }, /arms\[0\]\.model: unknown model 'nope'/],
    ['an arm on a missing version', { arms: [{ model: 'classifier', version: '1', weight: 1 }, { model: 'classifier', version: '7', weight: 1 }] }, /arms\[1\]\.version: model 'classifier' has no version '7'/],
    ['a rule naming an unknown arm', { arms: [{ model: 'classifier', version: '1', weight: 1 }], rules: [{ header: 'x-tier', equals: 'beta', arm: 'canary' }] }, /rules\[0\]\.arm: no arm named 'canary'/],
    ['duplicate arm names', { arms: [{ name: 'a', model: 'classifier', version: '1', weight: 1 }, { name: 'a', model: 'classifier', version: '2', weight: 1 }] }, /arms\[1\]\.name: arm name 'a' is used by arms\[0\] too/],
    ['a shadow on a missing version', { arms: [{ model: 'classifier', version: '1', weight: 1 }], shadow: { model: 'classifier', version: '9', percent: 10 } }, /shadow: model 'classifier' has no version '9'/],
    ['a shadow percent over 100', { arms: [{ model: 'classifier', version: '1', weight: 1 }], shadow: { model: 'classifier', version: '2', percent: 150 } }, /shadow\.percent: Too big/],
    ['an unknown field', { arms: [{ model: 'classifier', version: '1', weight: 1 }], weights: [1] }, /Unrecognized key.*weights/],
    ['no arms', { arms: [] }, /arms: Too small/],
  ];
  for (const [what, spec, message] of badRoutes) {
    it(`rejects a route with ${what} (400 naming the field)`, async () => {
      const { status, body } = await admin<{ error: string }>(stack.url, 'PUT', '/routes/bad', spec);
      assert.equal(status, 400, JSON.stringify(body));
      assert.match(body.error, message);
    });
  }

  it('leaves the old route in force when a change is rejected', async () => {
    const ok = await admin(stack.url, 'PUT', '/routes/keep', { arms: [{ model: 'classifier', version: '1', weight: 100 }] });
    assert.equal(ok.status, 200);
    const bad = await admin(stack.url, 'PUT', '/routes/keep', { arms: [{ model: 'classifier', version: '1', weight: 50 }, { model: 'classifier', version: '8', weight: 50 }] });
    assert.equal(bad.status, 400);
    const now = await admin<{ arms: { version: string; weight: number }[] }>(stack.url, 'GET', '/routes/keep');
    assert.deepEqual(now.body.arms.map((a) => [a.version, a.weight]), [['1', 100]]);
    assert.equal((await inferOnce(stack.url, 'keep')).version, '1');
  });

  it('answers 404 for missing models, versions and routes, and malformed JSON with 400', async () => {
    assert.equal((await admin(stack.url, 'GET', '/models/nope')).status, 404);
    assert.equal((await admin(stack.url, 'POST', '/models/classifier/versions/9/load')).status, 404);
    assert.equal((await admin(stack.url, 'GET', '/routes/nope')).status, 404);
    assert.equal((await admin(stack.url, 'POST', '/routes/nope/promote', { arm: 'x' })).status, 404);
    assert.equal((await admin(stack.url, 'GET', '/routes/nope/stats')).status, 404);
    const res = await fetch(`${stack.url}/admin/routes/x`, { method: 'PUT', headers: { authorization: 'Bearer test-admin-token', 'content-type': 'application/json' }, body: '{"arms": [' });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /malformed JSON body/);
    const badName = await admin<{ error: string }>(stack.url, 'PUT', '/routes/bad%20name', { arms: [{ model: 'classifier', version: '1', weight: 1 }] });
    assert.equal(badName.status, 400);
    assert.match(badName.body.error, /^route: /);
    const dup = await admin<{ error: string }>(stack.url, 'POST', '/models/classifier/versions', { version: '1' });
    assert.equal(dup.status, 409);
    const missingDir = await admin<{ error: string }>(stack.url, 'POST', '/models/classifier/versions', { version: '42' });
    assert.equal(missingDir.status, 400);
    assert.match(missingDir.body.error, /version: there is no directory .*classifier\/42/);
  });

  it('refuses (409) what would break a route or a pinned version, saying what blocks it', async () => {
    assert.equal((await admin(stack.url, 'PUT', '/routes/all-v2', { arms: [{ model: 'classifier', version: '2', weight: 100 }, { model: 'classifier', version: '1', weight: 0 }] })).status, 200);
    const unload = await admin<{ error: string }>(stack.url, 'POST', '/models/classifier/versions/2/unload');
    assert.equal(unload.status, 409);
    assert.match(unload.body.error, /route 'all-v2' sends 100% of its traffic to it/);
    const del = await admin<{ error: string }>(stack.url, 'DELETE', '/models/classifier');
    assert.equal(del.status, 409);
    assert.match(del.body.error, /route '.*' refers to it/);
    assert.equal((await admin(stack.url, 'POST', '/models/text_stats/versions/1/pin')).status, 200);
    const pinned = await admin<{ error: string }>(stack.url, 'DELETE', '/models/text_stats/versions/1');
    assert.equal(pinned.status, 409);
    assert.match(pinned.body.error, /is pinned; unpin it before deleting it/);
    assert.equal((await admin(stack.url, 'POST', '/models/text_stats/versions/1/unload')).status, 409);
    assert.equal((await admin(stack.url, 'POST', '/models/text_stats/versions/1/unpin')).status, 200);
    assert.equal((await admin(stack.url, 'DELETE', '/routes/all-v2')).status, 200);
  });

  it('unloads (draining) and loads a version through the API', async () => {
    const unloaded = await admin<{ state: string; serving: boolean }>(stack.url, 'POST', '/models/text_stats/versions/1/unload');
    assert.equal(unloaded.status, 200);
    assert.equal(unloaded.body.state, 'unloaded');
    assert.equal(unloaded.body.serving, false);
    const loaded = await admin<{ state: string; serving: boolean }>(stack.url, 'POST', '/models/text_stats/versions/1/load');
    assert.equal(loaded.body.state, 'ready');
    assert.equal(loaded.body.serving, true);
  });

  it('writes every mutation to the audit log with who, what and when', async () => {
    await fetch(`${stack.url}/admin/models/text_stats/versions/1/pin`, { method: 'POST', headers: { authorization: 'Bearer test-admin-token', 'x-inferneo-actor': 'alice' } });
    const { body } = await admin<{ at: string; actor: string; action: string; target: string }[]>(stack.url, 'GET', '/audit?limit=5');
    assert.equal(body[0]!.actor, 'alice');
    assert.equal(body[0]!.action, 'POST /models/:model/versions/:version/pin');
    assert.equal(body[0]!.target, 'text_stats/1');
    assert.ok(Date.now() - Date.parse(body[0]!.at) < 60_000);
    assert.ok(body.some((e) => e.action === 'POST /models/:model/versions/:version/unload'));
    assert.equal((await admin(stack.url, 'GET', '/audit?limit=0')).status, 400);
  });
});
