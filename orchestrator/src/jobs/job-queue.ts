import { randomUUID } from 'node:crypto';
import { FlowProducer, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { ModelConfig } from '../registry/model-config.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { Router } from '../routing/router.js';
import type { ChunkData } from './chunk-runner.js';
import type { InputSpool } from './input-spool.js';
import { finishJob } from './job-finish.js';
import { ingestRows } from './job-ingest.js';
import { jobViewOf } from './job-progress.js';
import { FINAL_STATES, JobState, type JobSettings, type JobView } from './job-spec.js';
import { JobStore } from './job-store.js';

/**
 * The batch-job API's side of BullMQ: submitting (ingest the spooled rows, then one FlowProducer
 * flow: a parent job in the `jobs` queue with one child per chunk in the `chunks` queue),
 * reading state and progress, streaming results in row order, watching progress, cancelling.
 * Submitting is all or nothing: a job becomes visible (and runnable) only after its whole input
 * was read and stored; a failed submit deletes what it wrote.
 *
 * Queues (BullMQ prefix `<redis_prefix>bull`): `jobs` holds parents, which run once every chunk is
 * done to finalize the job; `chunks` holds the chunks, taken by JobWorkers in any process.
 */

export const JOBS_QUEUE = 'jobs';
export const CHUNKS_QUEUE = 'chunks';

/** Data of a parent job. */
export interface ParentData {
  job: string;
}

export interface JobQueueOptions {
  redisUrl: string;
  /** Key prefix of the installation (`redis_prefix`). */
  prefix: string;
  registry: ModelRegistry;
  router: Router;
  spool: InputSpool;
  /** How long finished jobs and their results are kept (`jobs.ttl_s`). */
  ttlS: number;
  /** `jobs.max_rows` */
  maxRows: number;
  /** Attempts per chunk (`jobs.attempts`). */
  attempts: number;
  /** First retry delay of a chunk (`jobs.backoff_ms`). */
  backoffMs: number;
  /** `jobs.callback_timeout_ms` */
  callbackTimeoutMs: number;
  /** How long an unfinished submit's records live. @defaultValue 3600 */
  pendingTtlS?: number;
  /** @defaultValue console.error with a prefix */
  log?: (message: string) => void;
}

/** BullMQ connection options for a Redis URL: commands wait through reconnects, as BullMQ requires. */
export function bullConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url, maxRetriesPerRequest: null };
}

/** BullMQ's key prefix for an installation's Redis prefix. */
export function bullPrefix(prefix: string): string {
  return `${prefix}bull`;
}

export class JobQueue {
  private readonly options: JobQueueOptions;
  private readonly log: (message: string) => void;
  private redis: Redis | undefined;
  private store_: JobStore | undefined;
  private flow: FlowProducer | undefined;
  private jobsQueue: Queue<ParentData> | undefined;
  private chunksQueue: Queue<ChunkData> | undefined;
  private closed = false;

  constructor(options: JobQueueOptions) {
    this.options = options;
    this.log = options.log ?? ((m) => console.error(`[inferneo] ${m}`));
  }

  async start(): Promise<void> {
    // Fails fast (an API call gets 5xx) rather than hanging while Redis is away.
    const redis = new Redis(this.options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5_000 });
    redis.on('error', () => undefined);
    await redis.connect();
    this.redis = redis;
    this.store_ = new JobStore(redis, { prefix: this.options.prefix });
    const common = { connection: bullConnection(this.options.redisUrl), prefix: bullPrefix(this.options.prefix) };
    this.flow = new FlowProducer(common);
    this.jobsQueue = new Queue<ParentData>(JOBS_QUEUE, common);
    this.chunksQueue = new Queue<ChunkData>(CHUNKS_QUEUE, common);
    // Connection trouble is reported on each call; an 'error' without a listener would crash the process.
    this.flow.on('error', () => undefined);
    this.jobsQueue.on('error', () => undefined);
    this.chunksQueue.on('error', () => undefined);
    await Promise.all([this.flow.waitUntilReady(), this.jobsQueue.waitUntilReady(), this.chunksQueue.waitUntilReady()]);
  }

  private get store(): JobStore {
    if (this.store_ === undefined) throw new Error('JobQueue.start() has not been called');
    return this.store_;
  }

  /** The BullMQ queues (for the dashboard). */
  queues(): Queue[] {
    return [this.jobsQueue, this.chunksQueue].filter((q): q is Queue => q !== undefined) as Queue[];
  }

  /** The signature rows must match: the model's, the version's model's, or a route's main arm's. */
  signature(name: string, version: string | undefined): ModelConfig {
    const { registry, router } = this.options;
    if (version !== undefined) {
      registry.version(name, version);
      return registry.model(name).config;
    }
    const route = router.find(name);
    if (route !== undefined) {
      const main = [...route.arms].sort((a, b) => b.weight - a.weight)[0]!;
      return registry.model(main.model).config;
    }
    if (!registry.models().some((m) => m.name === name)) throw new NotFoundError(`unknown model or route '${name}'`);
    return registry.model(name).config;
  }

  /**
   * Creates a job from a spooled JSON Lines file (which this call deletes) and queues it. Rejects
   * with 4xx errors for an unknown model or route, a file that is not JSON Lines, no rows, too many
   * rows, or rows of which not one is valid; nothing of the job remains then.
   */
  async submit(settings: JobSettings, file: string): Promise<JobView> {
    const id = randomUUID();
    const createdAt = Date.now();
    const pendingTtlS = this.options.pendingTtlS ?? 3600;
    let chunks = 0;
    let created = false;
    try {
      const config = this.signature(settings.model, settings.version);
      await this.store.create(
        {
          id,
          model: settings.model,
          ...(settings.version !== undefined ? { version: settings.version } : {}),
          chunk_size: settings.chunk_size,
          priority: settings.priority,
          ...(settings.callback_url !== undefined ? { callback_url: settings.callback_url } : {}),
          created_at: new Date(createdAt).toISOString(),
        },
        pendingTtlS,
      );
      created = true;
      const ingested = await ingestRows(this.options.spool, file, this.store, {
        id,
        config,
        chunkSize: settings.chunk_size,
        maxRows: this.options.maxRows,
        pendingTtlS,
      });
      chunks = ingested.chunks;
      if (ingested.total === 0) throw new InvalidArgumentError('the job has no rows: give at least one {"inputs": [...]} row');
      if (ingested.runnable.length === 0) {
        throw new InvalidArgumentError(
          `none of the ${ingested.total} row(s) matches the inputs of ${settings.model}: ${ingested.examples.join('; ')}${ingested.invalid > ingested.examples.length ? '; …' : ''}`,
        );
      }
      await this.store.activate(id, ingested.total, ingested.chunks, createdAt);
      const ttl = this.options.ttlS;
      await this.flow!.add({
        name: 'job',
        queueName: JOBS_QUEUE,
        data: { job: id } satisfies ParentData,
        opts: { jobId: id, attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: ttl }, removeOnFail: { age: ttl } },
        children: ingested.runnable.map((chunk) => ({
          name: 'chunk',
          queueName: CHUNKS_QUEUE,
          data: { job: id, chunk } satisfies ChunkData,
          opts: {
            jobId: `${id}-${chunk}`,
            priority: settings.priority,
            attempts: this.options.attempts,
            backoff: { type: 'exponential', delay: this.options.backoffMs },
            failParentOnFailure: true,
            removeOnComplete: { age: ttl, count: 10_000 },
            removeOnFail: { age: ttl },
          },
        })),
      });
      this.log(`job ${id} queued: ${ingested.total} rows (${ingested.invalid} invalid) of ${settings.model} in ${ingested.runnable.length} chunks`);
      return await this.get(id);
    } catch (err) {
      if (created) await this.store.remove(id, chunks).catch(() => undefined);
      throw err;
    } finally {
      await this.options.spool.remove(file);
    }
  }

  private async flowState(id: string): Promise<string | undefined> {
    const state = await this.jobsQueue!.getJobState(id);
    return state === 'unknown' ? undefined : state;
  }

  private async view(id: string): Promise<JobView | undefined> {
    let meta = await this.store.meta(id);
    if (meta === undefined) return undefined;
    const flowState = meta.state === undefined ? await this.flowState(id) : undefined;
    let view = jobViewOf(meta, flowState);
    if (meta.state === undefined && (flowState === 'completed' || flowState === 'failed')) {
      // BullMQ finished the parent but nobody finalized the record (its finalizer crashed).
      const failed = flowState === 'failed' ? ((await this.jobsQueue!.getJob(id))?.failedReason ?? 'a chunk failed') : undefined;
      await finishJob(this.store, id, view.state, {
        ttlS: this.options.ttlS,
        ...(failed !== undefined ? { error: failed } : {}),
        callbackTimeoutMs: this.options.callbackTimeoutMs,
        log: this.log,
      });
      meta = (await this.store.meta(id)) ?? meta;
      view = jobViewOf(meta, flowState);
    }
    return view;
  }

  async get(id: string): Promise<JobView> {
    const view = await this.view(id);
    if (view === undefined) throw new NotFoundError(`unknown job '${id}' (finished jobs expire after ${this.options.ttlS} s)`);
    return view;
  }

  /** The newest jobs first. */
  async list(limit = 100): Promise<JobView[]> {
    const metas = await this.store.list(limit);
    const views = await Promise.all(metas.map((m) => this.view(m.id)));
    return views.filter((v): v is JobView => v !== undefined);
  }

  /**
   * Cancels a job: chunks not started are dropped (removed from the queue; any that slip through
   * skip their rows), chunks running finish. 409 when the job has finished already.
   */
  async cancel(id: string): Promise<JobView> {
    const cancel = await this.store.requestCancel(id);
    if (cancel.outcome === 'gone') throw new NotFoundError(`unknown job '${id}'`);
    if (cancel.outcome === 'final') throw new ConflictError(`job '${id}' has ${cancel.state} already; only queued or running jobs can be cancelled`);
    const parent = await this.jobsQueue!.getJob(id);
    if (parent !== undefined) {
      try {
        await parent.removeUnprocessedChildren();
      } catch (err) {
        this.log(`job ${id}: could not remove its queued chunks (${(err as Error).message}); they will skip their rows`);
      }
    }
    const state = await this.flowState(id);
    // With nothing left to run the parent never gets to finalize: do it here.
    if (state === undefined || state === 'completed' || state === 'failed') {
      await finishJob(this.store, id, JobState.CANCELLED, { ttlS: this.options.ttlS, callbackTimeoutMs: this.options.callbackTimeoutMs, log: this.log });
    }
    this.log(`job ${id} cancelled`);
    return this.get(id);
  }

  /** Result lines in row order, read `batch` rows at a time; rows without a result yet are skipped. */
  async *results(id: string, batch = 512): AsyncGenerator<string[]> {
    const meta = await this.store.meta(id);
    if (meta === undefined) throw new NotFoundError(`unknown job '${id}'`);
    for (let from = 0; from < meta.total; from += batch) {
      const lines = await this.store.results(id, from, Math.min(meta.total, from + batch));
      if (lines.length > 0) yield lines;
    }
  }

  /**
   * The job's view now and whenever it changes (polled every `intervalMs`), ending after a final
   * state. Stops when `signal` aborts.
   */
  async *watch(id: string, intervalMs: number, signal?: AbortSignal): AsyncGenerator<JobView> {
    let last = '';
    while (signal?.aborted !== true && !this.closed) {
      const view = await this.get(id);
      const key = JSON.stringify({ ...view, rate_rows_per_s: null, eta_s: null });
      if (key !== last) {
        last = key;
        yield view;
      }
      if (FINAL_STATES.has(view.state)) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.flow?.close(), this.jobsQueue?.close(), this.chunksQueue?.close()]);
    this.redis?.disconnect();
  }
}
