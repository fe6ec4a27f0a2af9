#!/usr/bin/env node
// `npm test`: set up what is missing, start a throw-away Redis (unless REDIS_URL is set), run the
// Python tests (pytest under coverage.py), the conformance tests (NVIDIA's clients against a real
// Inferneo, pytest in .venv-triton) and the TypeScript tests (mocha under c8), print both coverage
// reports, and end with one line `N passed, N failed` that counts every test of all three.
// Arguments after `--` go to mocha (e.g. `npm test -- --grep batcher`).
import path from 'node:path';
import { startLocalRedis } from './lib/redis.mjs';
import { log, runCaptured } from './lib/run.mjs';
import { ensureTritonVenv, ROOT, setup, TRITON_PYTHON, VENV_PYTHON } from './lib/setup.mjs';

function count(output, pattern) {
  let total = 0;
  for (const m of output.matchAll(pattern)) total += Number(m[1]);
  return total;
}

let redis;
let passed = 0;
let failed = 0;
let crashed = false;
try {
  setup();
  ensureTritonVenv();
  if (!process.env.REDIS_URL) {
    redis = await startLocalRedis();
    log(`test Redis at ${redis.url}`);
  }
  const env = { ...process.env, REDIS_URL: process.env.REDIS_URL || redis.url, FORCE_COLOR: '0' };

  log('python tests (pytest, coverage.py)');
  await runCaptured(VENV_PYTHON, ['-m', 'coverage', 'erase'], { cwd: ROOT, env });
  const py = await runCaptured(VENV_PYTHON, ['-m', 'coverage', 'run', '-m', 'pytest', 'worker/tests', '-q', '--color=no', '-p', 'no:cacheprovider'], { cwd: ROOT, env });
  // pytest's last line: "== 40 passed, 1 failed, 2 errors in 3.1s ==".
  const pySummary = py.output.trim().split('\n').pop() ?? '';
  const pyPassed = count(pySummary, /(\d+) passed/g);
  const pyFailed = count(pySummary, /(\d+) failed/g) + count(pySummary, /(\d+) errors?/g);
  if (py.code !== 0 && pyFailed === 0) crashed = true;
  passed += pyPassed;
  failed += pyFailed;
  await runCaptured(VENV_PYTHON, ['-m', 'coverage', 'combine', '--quiet'], { cwd: ROOT, env });
  await runCaptured(VENV_PYTHON, ['-m', 'coverage', 'report'], { cwd: ROOT, env });

  // NVIDIA's own clients (tritonclient HTTP + gRPC, perf_analyzer) against a real orchestrator that
  // the tests start from dist/ (tests/conformance/conftest.py), in the Triton venv.
  log('conformance tests (pytest, tritonclient + perf_analyzer against a real Inferneo)');
  const conf = await runCaptured(TRITON_PYTHON, ['-m', 'pytest', 'tests/conformance', '-q', '--color=no', '-p', 'no:cacheprovider'], {
    cwd: ROOT,
    env: { ...env, INFERNEO_NODE: process.execPath },
  });
  const confSummary = conf.output.trim().split('\n').pop() ?? '';
  const confPassed = count(confSummary, /(\d+) passed/g);
  let confFailed = count(confSummary, /(\d+) failed/g) + count(confSummary, /(\d+) errors?/g);
  // A run that died before its summary (collection error, interpreter crash) counts as one failure.
  if (conf.code !== 0 && confFailed === 0) confFailed = 1;
  passed += confPassed;
  failed += confFailed;

  log('typescript tests (mocha, c8)');
  const ts = await runCaptured(
    process.execPath,
    [path.join(ROOT, 'node_modules/c8/bin/c8.js'), process.execPath, path.join(ROOT, 'node_modules/mocha/bin/mocha.js'), ...process.argv.slice(2)],
    { cwd: ROOT, env },
  );
  const tsPassed = count(ts.output, /^\s+(\d+) passing/gm);
  const tsFailed = count(ts.output, /^\s+(\d+) failing/gm);
  if (ts.code !== 0 && tsFailed === 0) crashed = true;
  passed += tsPassed;
  failed += tsFailed;
} catch (err) {
  console.error(`inferneo test: ${err.message}`);
  crashed = true;
} finally {
  await redis?.stop();
}
if (crashed) failed = Math.max(failed, 1);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
