#!/usr/bin/env node
// `npm run bench [-- --duration-ms 5000 --concurrency 1,16 --models classifier,mlp_wide]`:
// set up, install the chart library, start a throw-away Redis, and run bench/latency.ts.
import path from 'node:path';
import { startLocalRedis } from './lib/redis.mjs';
import { run } from './lib/run.mjs';
import { ROOT, setup, VENV_PYTHON } from './lib/setup.mjs';

let redis;
let code = 0;
try {
  setup();
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', path.join(ROOT, 'bench', 'requirements.txt')]);
  if (!process.env.REDIS_URL) redis = await startLocalRedis();
  const env = { ...process.env, REDIS_URL: process.env.REDIS_URL || redis.url };
  run(process.execPath, [path.join(ROOT, 'dist', 'bench', 'latency.js'), ...process.argv.slice(2)], { cwd: ROOT, env });
} catch (err) {
  console.error(`bench: ${err.message}`);
  code = 1;
} finally {
  await redis?.stop();
}
process.exit(code);
