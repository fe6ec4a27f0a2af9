#!/usr/bin/env node
// Runs a Python dev tool from .venv for `npm run lint` / `npm run typecheck`.
import path from 'node:path';
import { run } from './lib/run.mjs';
import { ensureVenv, ROOT, VENV_PYTHON } from './lib/setup.mjs';

const tool = process.argv[2];
// mypy checks the conformance tests in a run of their own: their conftest.py and the worker's would
// otherwise be two top-level modules named `conftest`.
const commands = {
  mypy: [
    ['-m', 'mypy', 'worker', 'model-repository'],
    ['-m', 'mypy', 'tests/conformance'],
  ],
  ruff: [['-m', 'ruff', 'check', 'worker', 'model-repository', 'tests/conformance']],
};
if (!commands[tool]) {
  console.error(`usage: venv-run.mjs ${Object.keys(commands).join('|')}`);
  process.exit(2);
}
try {
  ensureVenv();
  for (const args of commands[tool]) run(VENV_PYTHON, args, { cwd: path.resolve(ROOT) });
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
