import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { redisUrl, ROOT, waitFor } from './support/stack.js';

/**
 * The two commands a user runs, as processes: the orchestrator's CLI (config errors, Redis errors,
 * start and SIGTERM) and `npm start`'s script, which also owns a Redis and the workers.
 */

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function launch(args: string[], env: Record<string, string | undefined>): Run {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/** Every process below `pid` (children, grandchildren…), from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [child, parent] of parentOf) if (parent === p) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

const MAIN = path.join(ROOT, 'dist', 'orchestrator', 'src', 'main.js');

describe('orchestrator command line', function () {
  this.timeout(120_000);

  it('stops with exit code 2 and names the key and the bad value of an invalid config', async () => {
    const run = launch([MAIN], { INFERNEO_HTTP_PORT: 'eighty', REDIS_URL: redisUrl() });
    assert.equal(await run.exit, 2);
    assert.match(run.stderr(), /invalid configuration: http\.port = "eighty" \(from INFERNEO_HTTP_PORT\)/);
  });

  it('rejects unknown arguments and prints usage on --help', async () => {
    const bad = launch([MAIN, '--colour'], {});
    assert.equal(await bad.exit, 2);
    assert.match(bad.stderr(), /unknown argument '--colour'/);
    const help = launch([MAIN, '--help'], {});
    assert.equal(await help.exit, 0);
    assert.match(help.stdout(), /usage: inferneo/);
  });

  it('stops with a clear message when Redis cannot be reached', async () => {
    const run = launch([MAIN], { REDIS_URL: 'redis://127.0.0.1:1', INFERNEO_HTTP_PORT: '0', INFERNEO_WORKERS: '0' });
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });

  it('starts, prints its URLs, serves, and stops its workers on SIGTERM', async () => {
    const config = path.join(ROOT, 'worker-config', 'inferneo.yaml');
    const run = launch([MAIN, '--config', config], {
      REDIS_URL: redisUrl(),
      INFERNEO_HTTP_HOST: '127.0.0.1',
      INFERNEO_HTTP_PORT: '0',
      INFERNEO_GRPC_PORT: '0',
      INFERNEO_WORKERS: '1',
      INFERNEO_STARTUP_MODELS: 'classifier',
    });
    await waitFor('the URLs', () => /Inferneo is running/.test(run.stdout()), 60_000);
    const url = /(http:\/\/127\.0\.0\.1:\d+)\/v2\n/.exec(run.stdout())![1]!;
    assert.equal((await fetch(`${url}/v2/health/ready`)).status, 200);
    const workers = descendants(run.child.pid!);
    assert.ok(workers.length >= 1, 'a worker process runs under the orchestrator');
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    await waitFor('the workers to exit', () => workers.every((p) => !alive(p)), 10_000);
  });
});

describe('npm start (scripts/start.mjs)', function () {
  this.timeout(300_000);

  it('sets up, starts its own Redis and the workers, and stops them all on SIGTERM', async () => {
    const run = launch([path.join(ROOT, 'scripts', 'start.mjs')], {
      REDIS_URL: '',
      INFERNEO_HTTP_HOST: '127.0.0.1',
      INFERNEO_HTTP_PORT: '0',
      INFERNEO_GRPC_PORT: '0',
      INFERNEO_WORKERS: '1',
    });
    await waitFor('the URLs', () => /Inferneo is running/.test(run.stdout()), 240_000);
    const url = /(http:\/\/127\.0\.0\.1:\d+)\/v2\n/.exec(run.stdout())![1]!;
    assert.equal((await fetch(`${url}/v2/health/ready`)).status, 200);
    assert.match(run.stderr(), /started redis-server for this session at redis:\/\/127\.0\.0\.1:\d+/);
    const children = descendants(run.child.pid!);
    assert.ok(children.length >= 3, `redis, the orchestrator and a worker run under npm start (found ${children.length})`);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    await waitFor('every child to exit', () => children.every((p) => !alive(p)), 15_000);
  });
});
