// Small process helpers for the setup, start and test scripts. Dependency-free on purpose: these
// run before `npm ci` has installed anything.
import { spawn, spawnSync } from 'node:child_process';

export function log(message) {
  console.error(`[inferneo] ${message}`);
}

/** Runs a command to completion with inherited output; throws with the command line if it fails. */
export function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw new Error(`cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(`${[command, ...args].join(' ')} failed with ${result.signal ?? `exit code ${result.status}`}`);
  }
}

/** Runs a command and resolves with its exit code; output is passed through and also captured. */
export function runCaptured(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      output += d;
      process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

/** Whether a command exists on PATH (or at an absolute path). */
export function which(command) {
  const result = spawnSync('sh', ['-c', `command -v "${command}"`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}
