import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { classifierRow, jsonl, type JobViewBody, waitForJob } from './support/jobs.js';
import { ROOT, startStack } from './support/stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `inferneo jobs …` as a process against a real stack (which runs the jobs in this process). */
describe('inferneo jobs CLI (real workers)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let tmp: string;

  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
      c.models.startup = ['classifier'];
    });
    tmp = await mkdtemp(path.join(tmpdir(), 'inferneo-jobs-cli-'));
    await writeFile(path.join(tmp, 'rows.jsonl'), jsonl(Array.from({ length: 120 }, (_, i) => classifierRow(i + 1))));
  });
  after(async () => {
    await stack?.close();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  const cli = (args: string[]): Promise<CliResult> => {
    const env = { ...process.env, INFERNEO_URL: stack.url, INFERNEO_ADMIN_TOKEN: 'test-admin-token' };
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'inferneo.mjs'), ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  };

  it('submits a JSON Lines file, prints the id and follows the progress to the end', async () => {
    const r = await cli(['jobs', 'submit', 'rows.jsonl', '--route', 'classifier', '--chunk-size', '20']);
    assert.equal(r.code, 0, r.stderr);
    const [id, summary] = r.stdout.trim().split('\n');
    assert.match(id!, UUID);
    assert.match(summary!, /^job completed: 120 rows done, 0 failed; results: inferneo jobs results /);
    // Not a terminal: plain progress lines, the last one complete.
    const bars = r.stderr.trim().split('\n');
    assert.match(bars[bars.length - 1]!, /^\[#{24}\] 100% {2}120\/120 rows {2}0 failed {2}\d+ rows\/s {2}ETA 0:00 {2}completed$/);

    const status = await cli(['jobs', 'status', id!]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /^job\s+[0-9a-f-]{36}\nstate\s+completed\nmodel\s+classifier\nrows\s+120 done, 0 failed, 120 total\nchunks\s+6 of 20 rows, priority 5/);
    const list = await cli(['jobs', 'list', '--limit', '5']);
    assert.match(list.stdout, /^ID\s+STATE\s+MODEL\s+DONE\s+FAILED\s+TOTAL\s+CREATED\n/);
    assert.ok(list.stdout.includes(id!));

    const results = await cli(['jobs', 'results', id!]);
    assert.equal(results.code, 0);
    const lines = results.stdout.trim().split('\n').map((l) => JSON.parse(l) as { row: number; outputs: unknown[] });
    assert.deepEqual(lines.map((l) => l.row), Array.from({ length: 120 }, (_, i) => i));
    assert.equal((await cli(['jobs', 'results', id!, '--output', 'out.jsonl'])).code, 0);
    assert.equal(await readFile(path.join(tmp, 'out.jsonl'), 'utf8'), results.stdout);
  });

  it('--detach returns at once; --json prints the job; cancel', async () => {
    const r = await cli(['--json', 'jobs', 'submit', 'rows.jsonl', '--model', 'classifier', '--version', '2', '--detach', '--priority', '9', '--chunk-size', '1']);
    assert.equal(r.code, 0, r.stderr);
    const job = JSON.parse(r.stdout) as JobViewBody & { priority: number };
    assert.match(job.id, UUID);
    assert.equal(job.version, '2');
    assert.equal(job.priority, 9);
    assert.equal(r.stderr, '', 'no progress bar when detached');
    const cancel = await cli(['jobs', 'cancel', job.id]);
    if (cancel.code === 0) assert.match(cancel.stdout, new RegExp(`^job ${job.id} cancelled`));
    else assert.match(cancel.stderr, /has completed already/);
    await waitForJob(stack.url, job.id);
    const again = await cli(['jobs', 'cancel', job.id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^inferneo: job '.*' has (cancelled|completed) already/);
  });

  it('says what is wrong with a command line or a file', async () => {
    const both = await cli(['jobs', 'submit', 'rows.jsonl', '--route', 'a', '--model', 'b']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give the target as --route ROUTE or as --model MODEL/);
    const versionWithRoute = await cli(['jobs', 'submit', 'rows.jsonl', '--route', 'a', '--version', '1']);
    assert.equal(versionWithRoute.code, 2);
    assert.match(versionWithRoute.stderr, /--version goes with --model/);
    const chunk = await cli(['jobs', 'submit', 'rows.jsonl', '--route', 'classifier', '--chunk-size', 'x']);
    assert.equal(chunk.code, 2);
    assert.match(chunk.stderr, /--chunk-size 'x' is not a positive integer/);
    const missing = await cli(['jobs', 'submit', 'nope.jsonl', '--route', 'classifier']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ENOENT/);
    const unknown = await cli(['jobs', 'submit', 'rows.jsonl', '--route', 'nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^inferneo: unknown model or route 'nope'\n$/);
    await writeFile(path.join(tmp, 'bad.jsonl'), '{"inputs": [}\n');
    const bad = await cli(['jobs', 'submit', 'bad.jsonl', '--route', 'classifier']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /line 1 is not JSON/);
    const status = await cli(['jobs', 'status', '00000000-0000-4000-8000-000000000000']);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /unknown job/);
    const results = await cli(['jobs', 'results', '00000000-0000-4000-8000-000000000000']);
    assert.equal(results.code, 1);
    assert.match(results.stderr, /unknown job/);
  });

  it('rows with errors do not fail the job; submit reports them', async () => {
    await writeFile(path.join(tmp, 'half.jsonl'), jsonl([classifierRow(1), { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] }]));
    const r = await cli(['jobs', 'submit', 'half.jsonl', '--route', 'classifier']);
    assert.equal(r.code, 0, 'row errors do not fail the job');
    assert.match(r.stdout, /1 rows done, 1 failed/);
  });
});
