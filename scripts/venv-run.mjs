#!/usr/bin/env node
// Runs a Python dev tool from .venv for `npm run lint` / `npm run typecheck`.
import path from 'node:path';
import { run } from './lib/run.mjs';
import { ensureVenv, ROOT, VENV_PYTHON } from './lib/setup.mjs';

const tool = process.argv[2];
const commands = {
  mypy: ['-m', 'mypy', 'worker', 'model-repository'],
  ruff: ['-m', 'ruff', 'check', 'worker', 'model-repository'],
};
if (!commands[tool]) {
  console.error(`usage: venv-run.mjs ${Object.keys(commands).join('|')}`);
  process.exit(2);
}
try {
  ensureVenv();
  run(VENV_PYTHON, commands[tool], { cwd: path.resolve(ROOT) });
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
