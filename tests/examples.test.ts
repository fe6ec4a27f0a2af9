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
