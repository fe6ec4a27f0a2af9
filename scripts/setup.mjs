#!/usr/bin/env node
// `npm run setup`: install what is missing (node modules, .venv, example models, the build).
import { setup } from './lib/setup.mjs';
import { ensureRedisServer } from './lib/redis.mjs';

try {
  setup();
  if (!process.env.REDIS_URL) ensureRedisServer();
} catch (err) {
  console.error(`setup failed: ${err.message}`);
  process.exit(1);
}
