import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ModelView, RouteStatsView, RouteView } from '../orchestrator/src/cli/admin-client.js';
import { admin, inferOnce, MODEL_REPOSITORY, ROOT, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const BIN = path.join(ROOT, 'bin', 'inferneo.mjs');

/** The `inferneo` command against a real stack, run as a process exactly as a user runs it. */
describe('inferneo CLI (admin API, real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let tmp: string;
  const suffix = randomUUID().slice(0, 8);

  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
    });
    tmp = await mkdtemp(path.join(tmpdir(), 'inferneo-cli-'));
  });
  after(async () => {
    await stack?.close();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  /**
   * Runs `inferneo args…` in `tmp` (no token file there) with the stack's URL and token unless
   * `env` overrides them (`undefined` removes a variable). Asynchronous: the orchestrator runs in
   * this process and must keep answering while the command waits.
   */
  const cli = (args: string[], options: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {}): Promise<CliResult> => {
    const env: Record<string, string | undefined> = { ...process.env, INFERNEO_URL: stack.url, INFERNEO_ADMIN_TOKEN: 'test-admin-token', USER: 'cli-test' };
    delete env['INFERNEO_ADMIN_TOKEN_FILE'];
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? tmp, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.input ?? '');
    return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  };

  /** Runs a command that must succeed; returns its stdout. */
  const ok = async (args: string[], options?: Parameters<typeof cli>[1]): Promise<string> => {
    const r = await cli(args, options);
    assert.equal(r.code, 0, `inferneo ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    assert.equal(r.stderr, '');
    return r.stdout;
  };

  /** Runs a command that must fail with `code` and one `inferneo: …` line matching `message`, without a stack trace. */
  const fails = async (args: string[], code: number, message: RegExp, options?: Parameters<typeof cli>[1]): Promise<void> => {
    const r = await cli(args, options);
    assert.equal(r.code, code, `inferneo ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^inferneo: /);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
    assert.equal(r.stdout, '');
  };

  describe('models', () => {
    it('lists models as a table and, with --json, as the API returns them', async () => {
      const table = await ok(['models', 'list']);
      assert.match(table, /^MODEL\s+VERSION\s+STATE\s+PINNED\s+SERVING\s+INFLIGHT\s+REASON\n/);
      assert.match(table, /^classifier\s+1\s+ready\s+no\s+yes\s+0$/m);
      assert.match(table, /^classifier\s+2\s+ready\s+no\s+yes\s+0$/m);
      const json = JSON.parse(await ok(['models', 'list', '--json'])) as ModelView[];
      assert.deepEqual(json, (await admin(stack.url, 'GET', '/models')).body);
    });

    it('registers a model and a version, loads, pins, unloads and deletes them', async () => {
      const name = `cli-model-${suffix}`;
      // Triton requires the config's name to be its directory's name.
      const dir = path.join(tmp, name);
      await mkdir(dir);
      const config = await readFile(path.join(MODEL_REPOSITORY, 'classifier', 'config.pbtxt'), 'utf8');
      await writeFile(path.join(dir, 'config.pbtxt'), config.replace(/^name: .*$/m, `name: "${name}"`));
      await cp(path.join(MODEL_REPOSITORY, 'classifier', '1'), path.join(dir, '1'), { recursive: true });

      // A relative --source is taken from the command's working directory.
      const registered = await ok(['models', 'register', name, '--source', name, '--backend', 'python']);
      assert.equal(registered, `registered model ${name} (python, onnxruntime_onnx) from ${dir}; versions: 1\n`);

      await fails(['models', 'register-version', name, '2'], 1, /there is no directory .* holding version '2'/);
      await cp(path.join(MODEL_REPOSITORY, 'classifier', '2'), path.join(dir, '2'), { recursive: true });
      assert.equal(await ok(['models', 'register-version', name, '2', '--pinned']), `registered ${name} v2: registered (pinned), from ${dir}\n`);
      await fails(['models', 'register-version', name, '2'], 1, /version '2' of model '.*' is already registered/);
      assert.match(await ok(['models', 'list']), new RegExp(`^${name}\\s+2\\s+registered\\s+yes\\s+no\\s+0$`, 'm'));

      assert.equal(await ok(['models', 'load', name, '2']), `${name} v2: ready (pinned)\n`);
      const served = await inferOnce(stack.url, `${name}/versions/2`);
      assert.equal(served.status, 200, served.error);
      await fails(['models', 'unload', name, '2'], 1, /is pinned; unpin it/);
      await fails(['models', 'delete', name], 1, /pinned/);
      assert.equal(await ok(['models', 'unpin', name, '2']), `${name} v2: ready\n`);
      assert.equal(await ok(['models', 'pin', name, '2']), `${name} v2: ready (pinned)\n`);
      await ok(['models', 'unpin', name, '2']);
      assert.equal(await ok(['models', 'unload', name, '2']), `${name} v2: unloaded\n`);
      assert.equal(await ok(['models', 'delete', name, '2']), `deleted ${name} v2\n`);
      assert.deepEqual(JSON.parse(await ok(['models', 'delete', name, '--json'])), { deleted: name });
      await fails(['models', 'load', name, '1'], 1, /unknown model/);
    });

    it('says who made a change in the audit log: --actor, else $USER', async () => {
      await ok(['models', 'pin', 'classifier', '1', '--actor', 'alice']);
      await ok(['models', 'unpin', 'classifier', '1']);
      const { body } = await admin<{ actor: string; action: string }[]>(stack.url, 'GET', '/audit?limit=2');
      assert.deepEqual(
        body.map((e) => [e.actor, e.action]),
        [
          ['cli-test', 'POST /models/:model/versions/:version/unpin'],
          ['alice', 'POST /models/:model/versions/:version/pin'],
        ],
      );
    });
  });

  describe('routes', () => {
    it('sets a route from flags, shows it, reports stats, promotes, rolls back and deletes it', async () => {
      const route = `cli-route-${suffix}`;
      const set = await ok(['routes', 'set', route, '--arm', 'classifier:1=90:stable', '--arm', 'classifier:2=10:canary', '--sticky', '--rule', 'x-user-tier=beta:canary', '--shadow', 'classifier:2=5']);
      assert.match(set, new RegExp(`^route\\s+${route}\\nsticky\\s+yes\\n`));
      assert.match(set, /^stable\s+classifier:1\s+90\s+90%$/m);
      assert.match(set, /^rule\s+x-user-tier: beta -> canary$/m);
      const stored = (await admin<RouteView>(stack.url, 'GET', `/routes/${route}`)).body;
      assert.deepEqual(stored.arms, [
        { name: 'stable', model: 'classifier', version: '1', weight: 90 },
        { name: 'canary', model: 'classifier', version: '2', weight: 10 },
      ]);
      assert.deepEqual(stored.rules, [{ header: 'x-user-tier', equals: 'beta', arm: 'canary' }]);
      assert.deepEqual(stored.shadow, { model: 'classifier', version: '2', percent: 5 });
      assert.deepEqual(JSON.parse(await ok(['routes', 'get', route, '--json'])), stored);
      assert.match(await ok(['routes', 'list']), new RegExp(`^${route}\\s+stable=90% canary=10%\\s+yes\\s+classifier:2 5%$`, 'm'));

      for (let i = 0; i < 6; i++) assert.equal((await inferOnce(stack.url, route, {}, i)).status, 200);
      for (let i = 0; i < 3; i++) assert.equal((await inferOnce(stack.url, route, { 'x-user-tier': 'beta' }, i)).arm, 'canary');
      const stats = JSON.parse(await ok(['routes', 'stats', route, '--json'])) as RouteStatsView;
      assert.equal(stats.arms.reduce((sum, a) => sum + a.requests, 0), 9);
      const table = await ok(['routes', 'stats', route]);
      assert.match(table, /^ARM\s+MODEL:VERSION\s+WEIGHT\s+REQUESTS\s+ERRORS\s+ERROR %\s+P50 MS\s+P95 MS\s+P99 MS\n/);
      const canary = stats.arms.find((a) => a.arm === 'canary')!;
      assert.ok(canary.requests >= 3);
      assert.match(table, new RegExp(`^canary\\s+classifier:2\\s+10\\s+${canary.requests}\\s+0\\s+0%\\s+\\d+\\.\\d\\s+\\d+\\.\\d\\s+\\d+\\.\\d$`, 'm'));

      assert.match(await ok(['routes', 'promote', route, 'canary']), /^canary\s+classifier:2\s+100\s+100%$/m);
      await fails(['routes', 'promote', route, 'nope'], 1, /has no arm 'nope'; its arms are stable, canary/);
      assert.match(await ok(['routes', 'rollback', route]), /^stable\s+classifier:1\s+90\s+90%$/m);
      await fails(['routes', 'rollback', route], 1, /no earlier version to roll back to/);
      assert.equal(await ok(['routes', 'delete', route]), `deleted route ${route}\n`);
      await fails(['routes', 'get', route], 1, new RegExp(`unknown route '${route}'`));
    });

    it('sets a route from a JSON file or stdin, including one saved by routes get --json', async () => {
      const route = `cli-file-${suffix}`;
      const spec = { arms: [{ model: 'classifier', version: '1', weight: 3 }, { model: 'classifier', version: '2', weight: 1 }] };
      assert.match(await ok(['routes', 'set', route, '--file', '-'], { input: JSON.stringify(spec) }), /^classifier-v1\s+classifier:1\s+3\s+75%$/m);
      const saved = path.join(tmp, `${route}.json`);
      await writeFile(saved, await ok(['routes', 'get', route, '--json']));
      await ok(['routes', 'set', `${route}-copy`, '--file', saved]);
      const copy = (await admin<RouteView>(stack.url, 'GET', `/routes/${route}-copy`)).body;
      assert.deepEqual(copy.arms.map((a) => [a.name, a.weight]), [['classifier-v1', 3], ['classifier-v2', 1]]);
      await fails(['routes', 'set', route, '--file', '-'], 2, /--file '-': not valid JSON/, { input: '{"arms": [' });
      await fails(['routes', 'set', route, '--file', saved, '--sticky'], 2, /either in a file or as flags, not both \(also given: --sticky\)/);
      await fails(['routes', 'set', route, '--file', path.join(tmp, 'missing.json')], 2, /--file '.*missing\.json': cannot read it: ENOENT/);
      // What the flags cannot check, the API does, naming the field.
      await fails(['routes', 'set', route, '--file', '-'], 1, /arms\[0\]\.version: model 'classifier' has no version '7'/, { input: '{"arms":[{"model":"classifier","version":"7","weight":1}]}' });
      await ok(['routes', 'delete', route]);
      await ok(['routes', 'delete', `${route}-copy`]);
    });
  });

  describe('errors', () => {
    it('a wrong token: exit 1 with the API message and where the token came from', async () => {
      await fails(['models', 'list'], 1, /^inferneo: the bearer token is not the admin token \(the token came from INFERNEO_ADMIN_TOKEN\)\n$/, { env: { INFERNEO_ADMIN_TOKEN: 'wrong' } });
      await fails(['--token', 'wrong', 'routes', 'list', '--json'], 1, /not the admin token \(the token came from --token\)/);
    });

    it('no token: exit 2 saying how to give one; the token file of the working directory is used', async () => {
      await fails(['models', 'list'], 2, /no admin token: pass --token, set INFERNEO_ADMIN_TOKEN, or run inferneo in the directory where the orchestrator wrote \.inferneo\/admin-token/, { env: { INFERNEO_ADMIN_TOKEN: undefined } });
      const dir = path.join(tmp, 'with-token-file');
      await mkdir(path.join(dir, '.inferneo'), { recursive: true });
      await writeFile(path.join(dir, '.inferneo', 'admin-token'), 'test-admin-token\n');
      assert.match(await ok(['routes', 'list'], { env: { INFERNEO_ADMIN_TOKEN: undefined }, cwd: dir }), /^ROUTE\s+ARMS\s+STICKY\s+SHADOW/);
    });

    it('an unknown route: exit 1 "unknown route"', async () => {
      await fails(['routes', 'stats', `no-such-route-${suffix}`], 1, new RegExp(`^inferneo: unknown route 'no-such-route-${suffix}'\\n$`));
    });

    it('bad flag values and usage errors: exit 2 naming the flag, before any request', async () => {
      await fails(['routes', 'set', 'r', '--arm', 'classifier=1'], 2, /^inferneo: --arm 'classifier=1': expected MODEL:VERSION=WEIGHT\[:NAME\]/);
      await fails(['routes', 'set', 'r', '--arm', 'classifier:v1=1'], 2, /--arm 'classifier:v1=1': VERSION 'v1' is not a version number/);
      await fails(['routes', 'set', 'r', '--arm', 'classifier:1=1', '--rule', 'x-tier=beta:canary'], 2, /--rule 'x-tier=beta:canary': no --arm is named 'canary'; the arms are classifier-v1/);
      await fails(['routes', 'set', 'r', '--arm', 'classifier:1=1', '--shadow', 'classifier:2=150'], 2, /--shadow 'classifier:2=150': PERCENT '150' is not a number from 0 to 100/);
      await fails(['routes', 'set', 'r'], 2, /needs at least one --arm/);
      await fails(['models', 'register', 'm', '--backend', 'tensorflow'], 2, /--backend.*tensorflow.*python, triton/);
      await fails(['models', 'launch'], 2, /unknown command 'launch'/);
      await fails(['routes', 'promote', 'r'], 2, /missing required argument 'arm'/);
      await fails(['models', 'list'], 2, /url: 'not a url' is not a URL.*\(from INFERNEO_URL\)/, { env: { INFERNEO_URL: 'not a url' } });
      const help = await cli(['routes', 'set', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--arm <spec>\s+an arm, MODEL:VERSION=WEIGHT\[:NAME\]/);
    });

    it('an unreachable orchestrator: exit 1 naming the URL', async () => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as { port: number }).port;
      await new Promise((resolve) => server.close(resolve));
      const url = `http://127.0.0.1:${port}`;
      await fails(['models', 'list'], 1, new RegExp(`^inferneo: cannot reach the orchestrator at ${url} \\(ECONNREFUSED\\)`), { env: { INFERNEO_URL: url } });
    });
  });
});
