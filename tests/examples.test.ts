import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, startStack, VENV_PYTHON } from './support/stack.js';

const run = promisify(execFile);

/** The README's examples, run as a user would, against a real stack. */
describe('examples (real workers)', function () {
  this.timeout(120_000);
  let stack: Awaited<ReturnType<typeof startStack>>;
  before(async () => {
    stack = await startStack((c) => {
      c.workers.spawn = 1;
    });
  });
  after(async () => {
    await stack?.close();
  });

  it('examples/basic-inference.mjs', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'examples', 'basic-inference.mjs'), '--url', stack.url]);
    assert.match(stdout, /server: inferneo/);
    assert.match(stdout, /classifier v1: label \d, probabilities/);
    assert.match(stdout, /classifier v2: label \d, probabilities/);
    assert.match(stdout, /binary: model_version 2/);
    assert.match(stdout, /text_stats: HELLO INFERNEO \(14 chars\), GRÜSSE \(5 chars\)/);
  });

  it('examples/llm-chat/chat.mjs', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'examples', 'llm-chat', 'chat.mjs'), '--url', stack.url, '--token', 'test-admin-token']);
    assert.match(stdout, /^models: smollm2$/m);
    assert.match(stdout, /^answer \(smollm2-v2, arm smollm2-v2\): .*Paris/m);
    assert.match(stdout, /^usage: \d+ prompt \+ \d+ completion tokens, finish_reason (stop|length)$/m);
    assert.match(stdout, /^stream: \d+ pieces, \d+ tokens, first token after \d+ ms$/m);
    assert.match(stdout, /^generate: model smollm2 v2: " Paris/m);
    assert.match(stdout, /^route assistant: alice→\w+ bob→\w+ carol→\w+ alice→\w+ \(alice twice: same arm: true\)$/m);
  });

  it('examples/ab-hot-swap.mjs', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'examples', 'ab-hot-swap.mjs'), '--url', stack.url, '--token', 'test-admin-token']);
    const split = /^ab-demo: 1000 users → (.*)$/m.exec(stdout)?.[1] ?? '';
    const stable = Number(/stable (\d+)/.exec(split)?.[1]);
    const candidate = Number(/candidate (\d+)/.exec(split)?.[1]);
    assert.equal(stable + candidate, 1000, split);
    assert.ok(stable > 800 && candidate > 40, `a 90/10 split of 1000 users, got ${split}`);
    assert.match(stdout, /^sticky: the same 100 users again got the same arm: true$/m);
    const arms = [...stdout.matchAll(/^ {2}arm (\w+) \(classifier v(\d), weight (\d+)\): (\d+) requests, (\d+) errors/gm)];
    assert.deepEqual(arms.map((m) => [m[1], m[2], m[3]]), [['stable', '1', '90'], ['candidate', '2', '10']]);
    assert.equal(arms.reduce((n, m) => n + Number(m[4]), 0), 1100, 'every request counted in its arm');
    assert.ok(arms.every((m) => m[5] === '0'));
    assert.match(stdout, /^swap-demo: \d+ requests during the swap, 0 failed$/m);
    assert.match(stdout, /^answers: v1 first, v2 last; \d+ by v1, \d+ by v2$/m);
    assert.match(stdout, /answers switched from v1 to v2$/m);
    assert.match(stdout, /^cleaned up: routes deleted, classifier v1 loaded again$/m);
    assert.equal(stack.registry.version('classifier', '1').state, 'ready');
  });

  it('examples/basic_inference.py', async () => {
    const { stdout } = await run(VENV_PYTHON, [path.join(ROOT, 'examples', 'basic_inference.py'), '--url', stack.url]);
    assert.match(stdout, /classifier v1: labels \[.*\]; matches local ONNX Runtime: True/);
    assert.match(stdout, /classifier v2: labels \[.*\]; matches local ONNX Runtime: True/);
  });

  it('examples/batch-job/score.mjs', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'examples', 'batch-job', 'score.mjs'), '--url', stack.url, '--token', 'test-admin-token', '--rows', '1000']);
    assert.match(stdout, /^job [0-9a-f-]{36}: 1000 rows of classifier in 4 chunks$/m);
    assert.match(stdout, /^progress: completed 1000\/1000 rows \(2 failed\)$/m);
    assert.match(stdout, /^results: 1000 lines in row order: true; labels (\d:\d+ ?)+$/m);
    assert.match(stdout, /^errors: 2 \(first: row 499: input 'features': shape \[1,3\] does not match/m);
  });
});
