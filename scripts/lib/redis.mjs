// A throw-away local Redis owned by the calling process, for `npm start` and `npm test` when
// REDIS_URL is not set. Installs Debian's redis-server when it is missing and we are root.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { log, run, which } from './run.mjs';

export function ensureRedisServer() {
  const found = which('redis-server') ?? which('/usr/bin/redis-server');
  if (found) return found;
  if (process.platform === 'linux' && process.getuid?.() === 0 && which('apt-get')) {
    log('redis-server is not installed; installing Debian package redis-server');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-qq'], { env });
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], { env });
    const installed = which('redis-server') ?? which('/usr/bin/redis-server');
    if (installed) return installed;
  }
  throw new Error(
    'redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set REDIS_URL to a running Redis.',
  );
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.write('PING\r\n');
        socket.once('data', (d) => {
          socket.destroy();
          if (String(d).startsWith('+PONG')) resolve();
          else retry();
        });
      });
      socket.once('error', () => {
        socket.destroy();
        retry();
      });
    };
    const retry = () => (Date.now() > deadline ? reject(new Error(`redis-server did not answer on port ${port}`)) : setTimeout(attempt, 50));
    attempt();
  });
}

/**
 * Starts redis-server on a free loopback port with its data in a temporary directory.
 * `persistence: true` turns on the append-only file (for crash tests); otherwise nothing is written.
 * Resolves with `{ url, port, dir, process, stop() }`.
 */
export async function startLocalRedis({ persistence = false } = {}) {
  const binary = ensureRedisServer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inferneo-redis-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
    args.push('--appendonly', persistence ? 'yes' : 'no');
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await Promise.race([waitForPort(port, 10_000), exited.then(() => Promise.reject(new Error('redis-server exited')))]);
    } catch {
      child.kill('SIGKILL');
      continue; // most likely the port was taken between freePort() and the spawn
    }
    let stopped = false;
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      dir,
      process: child,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
          if (child.exitCode === null) child.kill('SIGKILL');
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  throw new Error('could not start redis-server on a free port');
}
