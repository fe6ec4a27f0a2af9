#!/usr/bin/env node
// `npm run bench [-- --duration-ms 5000 --concurrency 1,16 --models classifier,mlp_wide]` runs
// bench/latency.ts; `npm run bench:batching [-- --workers 1 --concurrency 1,8,32,64,128]` runs
// bench/batching.ts; `npm run bench:triton [-- --concurrency 1,16 --backend-protocols http,grpc]` runs
// bench/triton.ts (against a real tritonserver from .venv-triton); `npm run bench:jobs [-- --rows 100000
// --jobs-worker]` runs bench/jobs.ts (a batch job beside online traffic). All: set up, install the chart
// library, start a throw-away Redis, run.
import path from 'node:path';
import { startLocalRedis } from './lib/redis.mjs';
import { run } from './lib/run.mjs';
import { ensureTritonVenv, ROOT, setup, VENV_PYTHON } from './lib/setup.mjs';

let redis;
let code = 0;
try {
  setup();
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', path.join(ROOT, 'bench', 'requirements.txt')]);
  const [name, ...args] = process.argv.slice(2);
  if (name === 'triton') ensureTritonVenv();
  if (!process.env.REDIS_URL) redis = await startLocalRedis();
  const env = { ...process.env, REDIS_URL: process.env.REDIS_URL || redis.url };
  run(process.execPath, [path.join(ROOT, 'dist', 'bench', `${name}.js`), ...args], { cwd: ROOT, env });
} catch (err) {
  console.error(`bench: ${err.message}`);
  code = 1;
} finally {
  await redis?.stop();
}
process.exit(code);
