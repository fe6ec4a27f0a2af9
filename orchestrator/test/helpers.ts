import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/orchestrator/test). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const VENV_PYTHON = path.join(ROOT, '.venv', 'bin', 'python');

/** Runs a Python snippet in the project's venv and returns its stdout; throws with stderr on failure. */
export function python(code: string, input?: string | Buffer): string {
  const result = spawnSync(VENV_PYTHON, ['-c', code], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, PYTHONPATH: path.join(ROOT, 'worker') },
  });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return result.stdout;
}
