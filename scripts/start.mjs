#!/usr/bin/env node
// `npm start`: set up what is missing, start a local Redis unless REDIS_URL is set, then run the
// orchestrator (which spawns and supervises its Python workers) in the foreground. Ctrl-C or
// SIGTERM stops the orchestrator, its workers and the Redis this script started.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startLocalRedis } from './lib/redis.mjs';
import { log } from './lib/run.mjs';
import { ROOT, setup } from './lib/setup.mjs';

let redis;
try {
  setup();
  if (!process.env.REDIS_URL) {
    redis = await startLocalRedis();
    log(`started redis-server for this session at ${redis.url}`);
  }
} catch (err) {
  console.error(`inferneo: ${err.message}`);
  await redis?.stop();
  process.exit(1);
}

const env = { ...process.env, REDIS_URL: process.env.REDIS_URL || redis.url };
const orchestrator = spawn(process.execPath, ['--enable-source-maps', path.join(ROOT, 'dist/orchestrator/src/main.js'), ...process.argv.slice(2)], {
  cwd: ROOT,
  env,
  stdio: 'inherit',
});

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    // The orchestrator stops its workers itself; it may already have the signal from the terminal.
    if (orchestrator.exitCode === null) orchestrator.kill(signal);
  });
}
orchestrator.on('exit', async (code, signal) => {
  await redis?.stop();
  process.exit(code ?? (signal ? 1 : 0));
});
