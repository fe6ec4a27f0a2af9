import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { WorkerPool } from './worker-pool.js';

/**
 * Starts local Python worker processes and keeps them running: a worker that exits is restarted
 * after a backoff that doubles with each quick failure, and a worker the pool declares dead (silent)
 * is killed so that it restarts. Workers on other machines connect on their own and are not supervised.
 */

export interface WorkerSupervisorOptions {
  /** Worker processes to keep running. @defaultValue 1 */
  count?: number;
  /** Python interpreter with the worker's requirements installed. @defaultValue `.venv/bin/python` */
  python?: string;
  /** Directory that holds the `inferneo_worker` package (put on PYTHONPATH). @defaultValue `worker` */
  packageDir?: string;
  /** Worker YAML config passed as `--config`; undefined = none. */
  configFile?: string;
  /** Model repository passed as `--model-repository`. @defaultValue `model-repository` */
  modelRepository?: string;
  /** Extra command-line arguments for every worker. @defaultValue [] */
  extraArgs?: string[];
  /** Prefix of worker ids (`<prefix>-<n>`). @defaultValue `worker` */
  idPrefix?: string;
  /** First restart delay. @defaultValue 250 */
  restartInitialMs?: number;
  /** Longest restart delay. @defaultValue 10000 */
  restartMaxMs?: number;
  /** A worker that ran at least this long restarts after the initial delay again. @defaultValue 30000 */
  restartResetAfterMs?: number;
  /** Time a stopping worker gets after SIGTERM before SIGKILL. @defaultValue 5000 */
  stopGraceMs?: number;
}

export const WorkerProcessState = {
  STARTING: 'starting',
  RUNNING: 'running',
  BACKING_OFF: 'backing-off',
  STOPPED: 'stopped',
} as const;
export type WorkerProcessState = (typeof WorkerProcessState)[keyof typeof WorkerProcessState];

interface ManagedWorker {
  id: string;
  child: ChildProcess | undefined;
  state: WorkerProcessState;
  startedAt: number;
  restarts: number;
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
}

export class WorkerSupervisor {
  private readonly options: Required<Omit<WorkerSupervisorOptions, 'configFile'>> & { configFile: string | undefined };
  private readonly workers = new Map<string, ManagedWorker>();
  private closing = false;

  constructor(
    private readonly pool: WorkerPool,
    options: WorkerSupervisorOptions = {},
  ) {
    this.options = {
      count: options.count ?? 1,
      python: options.python ?? '.venv/bin/python',
      packageDir: options.packageDir ?? 'worker',
      configFile: options.configFile,
      modelRepository: options.modelRepository ?? 'model-repository',
      extraArgs: options.extraArgs ?? [],
      idPrefix: options.idPrefix ?? 'worker',
      restartInitialMs: options.restartInitialMs ?? 250,
      restartMaxMs: options.restartMaxMs ?? 10_000,
      restartResetAfterMs: options.restartResetAfterMs ?? 30_000,
      stopGraceMs: options.stopGraceMs ?? 5_000,
    };
    pool.on('worker-lost', (session, reason) => {
      const worker = this.workers.get(session.id);
      // A silent worker may be stuck rather than dead: kill it so that the exit handler restarts it.
      if (worker?.child !== undefined && worker.child.exitCode === null && !reason.startsWith('it said hello')) {
        worker.child.kill('SIGKILL');
      }
    });
  }

  start(): void {
    for (let i = 0; i < this.options.count; i++) {
      const id = `${this.options.idPrefix}-${i}`;
      const worker: ManagedWorker = {
        id,
        child: undefined,
        state: WorkerProcessState.STARTING,
        startedAt: 0,
        restarts: 0,
        delayMs: this.options.restartInitialMs,
        timer: undefined,
      };
      this.workers.set(id, worker);
      this.spawn(worker);
    }
  }

  /** Process ids of the running workers, by worker id (for tests and diagnostics). */
  pids(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.workers.values()) if (w.child?.pid !== undefined && w.child.exitCode === null) out.set(w.id, w.child.pid);
    return out;
  }

  restartCount(workerId: string): number {
    return this.workers.get(workerId)?.restarts ?? 0;
  }

  /** Stops every worker: SIGTERM, then SIGKILL after the grace period. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    const exits: Promise<void>[] = [];
    for (const w of this.workers.values()) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.state = WorkerProcessState.STOPPED;
      const child = w.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
      );
    }
    await Promise.all(exits);
  }

  private spawn(worker: ManagedWorker): void {
    const o = this.options;
    const args = [
      '-m',
      'inferneo_worker',
      '--connect',
      this.pool.endpoint,
      '--worker-id',
      worker.id,
      '--model-repository',
      path.resolve(o.modelRepository),
      '--exit-with-parent',
      ...(o.configFile !== undefined ? ['--config', path.resolve(o.configFile)] : []),
      ...o.extraArgs,
    ];
    const pythonPath = [path.resolve(o.packageDir), process.env['PYTHONPATH']].filter(Boolean).join(path.delimiter);
    const child = spawn(o.python, args, {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' },
    });
    worker.child = child;
    worker.state = WorkerProcessState.RUNNING;
    worker.startedAt = Date.now();
    child.once('error', (err) => {
      console.error(`[inferneo] cannot start worker ${worker.id} with ${o.python}: ${err.message}`);
    });
    child.once('exit', (code, signal) => this.onExit(worker, child, code, signal));
  }

  private onExit(worker: ManagedWorker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker.child !== child) return;
    const how = signal !== null ? `signal ${signal}` : `exit code ${String(code)}`;
    this.pool.markLost(worker.id, `its process ended (${how})`);
    if (this.closing || worker.state === WorkerProcessState.STOPPED) return;
    const ranFor = Date.now() - worker.startedAt;
    if (ranFor >= this.options.restartResetAfterMs) worker.delayMs = this.options.restartInitialMs;
    const delay = worker.delayMs;
    worker.delayMs = Math.min(this.options.restartMaxMs, worker.delayMs * 2);
    worker.state = WorkerProcessState.BACKING_OFF;
    console.error(`[inferneo] worker ${worker.id} (pid ${String(child.pid)}) ended with ${how}; restarting in ${delay} ms`);
    worker.timer = setTimeout(() => {
      worker.timer = undefined;
      if (this.closing) return;
      worker.restarts++;
      this.spawn(worker);
    }, delay);
  }
}
