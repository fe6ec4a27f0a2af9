import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { Router } from '../routing/router.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { type ChunkData, type ChunkOutcome, ChunkRunner } from './chunk-runner.js';
import { finishJob } from './job-finish.js';
import { bullConnection, bullPrefix, CHUNKS_QUEUE, JOBS_QUEUE, type ParentData } from './job-queue.js';
import { JobState } from './job-spec.js';
import { JobStore } from './job-store.js';

/**
 * The BullMQ workers that run batch jobs in this process: one Worker on the `chunks` queue (each
 * chunk through ChunkRunner, `concurrency` at once, under the queue-wide rate limit) and one on
 * the `jobs` queue (a parent runs when all its chunks are done, and finalizes the job). Any number
 * of processes sharing the Redis may run them — orchestrators and `inferneo jobs-worker`s alike.
 *
 * Crash safety comes from BullMQ's locks and the results' write-once rule: a chunk whose worker
 * dies keeps its lock until `lockMs` passes, is then found stalled and run again, and its rows
 * already recorded are not run or counted twice.
 */

export const JobWorkersState = { IDLE: 'idle', RUNNING: 'running', CLOSING: 'closing', CLOSED: 'closed' } as const;
export type JobWorkersState = (typeof JobWorkersState)[keyof typeof JobWorkersState];

export interface JobWorkersOptions {
  redisUrl: string;
  /** Key prefix of the installation (`redis_prefix`). */
  prefix: string;
  registry: ModelRegistry;
  router: Router;
  scheduler: Scheduler;
  /** Chunks run at once by this process (`jobs.concurrency`). */
  concurrency: number;
  /** Chunks started per window across all workers (`jobs.rate_limit_chunks`); 0 = no limit. */
  rateLimitChunks: number;
  /** `jobs.rate_limit_window_ms` */
  rateLimitWindowMs: number;
  /** Rows of a chunk queued in the batcher at once (`jobs.rows_in_flight`). */
  rowsInFlight: number;
  /** BullMQ lockDuration and stalled-check interval (`jobs.lock_ms`). */
  lockMs: number;
  /** Times a chunk may be found stalled (its worker gone) before it fails. @defaultValue 10 */
  maxStalledCount?: number;
  /** `jobs.ttl_s` */
  ttlS: number;
  /** `jobs.callback_timeout_ms` */
  callbackTimeoutMs: number;
  /** Where `inferneo_job_*` metrics go. @defaultValue none */
  metrics?: Registry;
  /** @defaultValue console.error with a prefix */
  log?: (message: string) => void;
}

export class JobWorkers {
  private readonly options: JobWorkersOptions;
  private readonly log: (message: string) => void;
  private state_: JobWorkersState = JobWorkersState.IDLE;
  private redis: Redis | undefined;
  private chunkWorker: Worker<ChunkData, ChunkOutcome> | undefined;
  private parentWorker: Worker<ParentData, void> | undefined;
  private readonly rows: Counter<'outcome'> | undefined;
  private readonly chunks: Counter<'outcome'> | undefined;

  constructor(options: JobWorkersOptions) {
    this.options = options;
    this.log = options.log ?? ((m) => console.error(`[inferneo] ${m}`));
    if (options.metrics !== undefined) {
      this.rows = new Counter({
        name: 'inferneo_job_rows_total',
        help: 'Batch-job rows this process recorded, by outcome (done: outputs; failed: an error line); each row counts once.',
        labelNames: ['outcome'],
        registers: [options.metrics],
      });
      this.chunks = new Counter({
        name: 'inferneo_job_chunks_total',
        help: 'Batch-job chunk runs in this process, by outcome (completed, retried, failed, skipped).',
        labelNames: ['outcome'],
        registers: [options.metrics],
      });
    }
  }

  state(): JobWorkersState {
    return this.state_;
  }

  async start(): Promise<void> {
    if (this.state_ !== JobWorkersState.IDLE) throw new Error(`JobWorkers cannot start when ${this.state_}`);
    const o = this.options;
    // Result writes wait through a Redis restart rather than fail the chunk.
    const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    redis.on('error', () => undefined);
    await redis.connect();
    this.redis = redis;
    const store = new JobStore(redis, { prefix: o.prefix });
    const runner = new ChunkRunner({
      store,
      registry: o.registry,
      router: o.router,
      scheduler: o.scheduler,
      rowsInFlight: o.rowsInFlight,
      onRecorded: (done, failed) => {
        this.rows?.inc({ outcome: 'done' }, done);
        this.rows?.inc({ outcome: 'failed' }, failed);
      },
    });
    const common = {
      connection: bullConnection(o.redisUrl),
      prefix: bullPrefix(o.prefix),
      lockDuration: o.lockMs,
      stalledInterval: o.lockMs,
      maxStalledCount: o.maxStalledCount ?? 10,
    };
    const finishOptions = { ttlS: o.ttlS, callbackTimeoutMs: o.callbackTimeoutMs, log: this.log };

    this.chunkWorker = new Worker<ChunkData, ChunkOutcome>(
      CHUNKS_QUEUE,
      async (job: Job<ChunkData, ChunkOutcome>) => {
        const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        const outcome = await runner.run(job.data, lastAttempt);
        this.chunks?.inc({ outcome: outcome.skipped !== undefined ? 'skipped' : 'completed' });
        return outcome;
      },
      { ...common, concurrency: o.concurrency, ...(o.rateLimitChunks > 0 ? { limiter: { max: o.rateLimitChunks, duration: o.rateLimitWindowMs } } : {}) },
    );
    this.chunkWorker.on('failed', (job, err) => {
      if (job === undefined) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1);
      this.chunks?.inc({ outcome: final ? 'failed' : 'retried' });
      if (!final) return;
      void finishJob(store, job.data.job, JobState.FAILED, { ...finishOptions, error: `chunk ${job.data.chunk}: ${err.message}` }).catch((e: Error) =>
        this.log(`job ${job.data.job}: could not record its failure: ${e.message}`),
      );
    });

    this.parentWorker = new Worker<ParentData, void>(
      JOBS_QUEUE,
      async (job: Job<ParentData, void>) => {
        const id = job.data.job;
        const meta = await store.meta(id);
        if (meta === undefined) return;
        let state: JobState = meta.cancelled ? JobState.CANCELLED : JobState.COMPLETED;
        let error: string | undefined;
        const missing = meta.total - meta.done - meta.failed;
        if (state === JobState.COMPLETED && missing > 0) {
          state = JobState.FAILED;
          error = `${missing} row(s) have no result`;
        }
        await finishJob(store, id, state, { ...finishOptions, ...(error !== undefined ? { error } : {}) });
      },
      { ...common, concurrency: 4 },
    );
    for (const worker of [this.chunkWorker, this.parentWorker]) {
      // BullMQ reports connection trouble here; without a listener it would crash the process.
      worker.on('error', (err) => this.log(`job worker: ${err.message}`));
    }
    await Promise.all([this.chunkWorker.waitUntilReady(), this.parentWorker.waitUntilReady()]);
    this.state_ = JobWorkersState.RUNNING;
  }

  /** Stops taking chunks and waits for the running ones to finish. Idempotent. */
  async close(): Promise<void> {
    if (this.state_ === JobWorkersState.CLOSING || this.state_ === JobWorkersState.CLOSED) return;
    this.state_ = JobWorkersState.CLOSING;
    await Promise.allSettled([this.chunkWorker?.close(), this.parentWorker?.close()]);
    this.redis?.disconnect();
    this.state_ = JobWorkersState.CLOSED;
  }
}
