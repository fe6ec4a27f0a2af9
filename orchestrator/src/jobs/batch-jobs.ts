import type { InferneoConfig } from '../config/index.js';
import type { Registry } from '../metrics/metrics.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { Router } from '../routing/router.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { InputSpool } from './input-spool.js';
import { JobQueue } from './job-queue.js';
import { JobWorkers } from './job-workers.js';

/**
 * Batch jobs in one process, wired from the `jobs` section of the configuration: the spool and
 * the JobQueue (submit, read, cancel) always, and the BullMQ JobWorkers when `jobs.workers` is on.
 * `close` stops the workers first (running chunks finish), then the queue. Idempotent.
 */
export interface BatchJobs {
  readonly queue: JobQueue;
  readonly spool: InputSpool;
  readonly workers: JobWorkers | undefined;
  close(): Promise<void>;
}

export interface BatchJobsDeps {
  registry: ModelRegistry;
  router: Router;
  scheduler: Scheduler;
  metrics?: Registry;
  log?: (message: string) => void;
}

export async function startBatchJobs(config: InferneoConfig, deps: BatchJobsDeps): Promise<BatchJobs> {
  const j = config.jobs;
  const spool = new InputSpool({ dir: j.spool_dir, maxBytes: j.max_upload_bytes });
  const queue = new JobQueue({
    redisUrl: config.redis_url,
    prefix: config.redis_prefix,
    registry: deps.registry,
    router: deps.router,
    spool,
    ttlS: j.ttl_s,
    maxRows: j.max_rows,
    attempts: j.attempts,
    backoffMs: j.backoff_ms,
    callbackTimeoutMs: j.callback_timeout_ms,
    ...(deps.log !== undefined ? { log: deps.log } : {}),
  });
  let workers: JobWorkers | undefined;
  const close = async (): Promise<void> => {
    await workers?.close();
    await queue.close();
  };
  try {
    await queue.start();
    if (j.workers) {
      workers = new JobWorkers({
        redisUrl: config.redis_url,
        prefix: config.redis_prefix,
        registry: deps.registry,
        router: deps.router,
        scheduler: deps.scheduler,
        concurrency: j.concurrency,
        rateLimitChunks: j.rate_limit_chunks,
        rateLimitWindowMs: j.rate_limit_window_ms,
        rowsInFlight: j.rows_in_flight,
        lockMs: j.lock_ms,
        ttlS: j.ttl_s,
        callbackTimeoutMs: j.callback_timeout_ms,
        ...(deps.metrics !== undefined ? { metrics: deps.metrics } : {}),
        ...(deps.log !== undefined ? { log: deps.log } : {}),
      });
      await workers.start();
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { queue, spool, workers, close };
}
