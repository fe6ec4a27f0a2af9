import type { Backend, BackendRequest } from '../backends/backend.js';
import { ErrorCode, type InferneoError, InvalidArgumentError, toInferneoError } from '../errors.js';
import type { Tensor } from '../protocol/tensor.js';
import type { ModelConfig } from '../registry/model-config.js';
import type { CancelSignal } from './cancel-signal.js';
import { type Clock, systemClock } from './clock.js';
import { type BatcherOptions, DynamicBatcher, type QueuePolicy } from './dynamic-batcher.js';
import type { FailureReason, InferenceStats } from './inference-stats.js';

/**
 * One dynamic batcher per model version, configured from the version's `config.pbtxt` exactly as
 * Triton reads it (`dynamic_batching`, `instance_group`, `max_batch_size`), in front of the backend.
 * A model without `dynamic_batching` runs each request on its own, as Triton's default scheduler
 * does; both honour the instance count as the number of executions in flight.
 */

export interface ScheduleOptions {
  /** `parameters.priority` of the request (1 = highest; 0 = default). */
  priority?: number;
  /** `parameters.timeout` of the request, in µs. */
  timeoutUs?: number;
  /** Cancelled when the client goes away. */
  signal?: CancelSignal;
  /** Batch-job work: served after every online request, never holding every instance (see DynamicBatcher). */
  background?: boolean;
}

export interface SchedulerOptions {
  /** @defaultValue the monotonic clock */
  clock?: Clock;
  /** Where the Triton-named metrics and statistics are recorded. */
  stats: InferenceStats;
  /**
   * When false, every request runs alone whatever the config says (the benchmark's "batching off").
   * @defaultValue true
   */
  batching?: boolean;
}

type Batcher = DynamicBatcher<BackendRequest, Tensor[]>;

function num(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function queuePolicy(raw: unknown): Partial<QueuePolicy> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const p = raw as Record<string, unknown>;
  const policy: Partial<QueuePolicy> = {};
  if (p['timeout_action'] === 'DELAY' || p['timeout_action'] === 'REJECT') policy.timeoutAction = p['timeout_action'];
  if (p['default_timeout_microseconds'] !== undefined) policy.defaultTimeoutUs = num(p['default_timeout_microseconds'], 0);
  if (p['allow_timeout_override'] !== undefined) policy.allowTimeoutOverride = p['allow_timeout_override'] === true;
  if (p['max_queue_size'] !== undefined) policy.maxQueueSize = num(p['max_queue_size'], 0);
  return policy;
}

/** Batcher settings for a model config (Triton field names and defaults). */
export function batcherOptionsFor(config: ModelConfig, batching = true): BatcherOptions {
  const instances = config.instance_group.reduce((sum, g) => sum + Math.max(1, g.count), 0) || 1;
  const dynamic = config.json['dynamic_batching'] as Record<string, unknown> | undefined;
  const options: BatcherOptions = {
    name: `model '${config.name}'`,
    maxBatchSize: batching && dynamic !== undefined ? config.max_batch_size : 0,
    maxInflightBatches: instances,
  };
  if (dynamic === undefined) return options;
  const preferred = dynamic['preferred_batch_size'];
  if (Array.isArray(preferred)) options.preferredBatchSizes = preferred.map((p) => num(p, 0));
  options.maxQueueDelayUs = num(dynamic['max_queue_delay_microseconds'], 0);
  options.preserveOrdering = dynamic['preserve_ordering'] === true;
  options.priorityLevels = num(dynamic['priority_levels'], 0);
  options.defaultPriorityLevel = num(dynamic['default_priority_level'], 0);
  const fallback = queuePolicy(dynamic['default_queue_policy']);
  if (fallback !== undefined) options.defaultQueuePolicy = fallback;
  const perLevel = dynamic['priority_queue_policy'];
  if (typeof perLevel === 'object' && perLevel !== null) {
    options.priorityQueuePolicy = new Map(
      Object.entries(perLevel as Record<string, unknown>).flatMap(([level, raw]) => {
        const p = queuePolicy(raw);
        return p === undefined ? [] : [[Number(level), p] as [number, Partial<QueuePolicy>]];
      }),
    );
  }
  return options;
}

/** What makes two requests batchable: the same inputs, datatypes and non-batch dimensions, and the same outputs. */
export function shapeKey(request: BackendRequest, batched: boolean): string {
  const inputs = [...request.inputs]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((t) => `${t.name}:${t.datatype}:${(batched ? t.shape.slice(1) : t.shape).join('x')}`);
  return `${inputs.join('|')}>${[...(request.outputs ?? [])].sort().join(',')}`;
}

function failureReason(err: InferneoError): FailureReason {
  if (err.code === ErrorCode.CANCELLED) return 'CANCELED';
  if (err.code === ErrorCode.RESOURCE_EXHAUSTED || err.code === ErrorCode.UNAVAILABLE || err.code === ErrorCode.DEADLINE_EXCEEDED) return 'REJECTED';
  if (err.code === ErrorCode.INTERNAL || err.code === ErrorCode.INVALID_ARGUMENT) return 'BACKEND';
  return 'OTHER';
}

export class Scheduler {
  private readonly clock: Clock;
  private readonly stats: InferenceStats;
  private readonly batching: boolean;
  private readonly batchers = new Map<string, { batcher: Batcher; config: ModelConfig }>();
  private closed = false;

  constructor(
    private readonly backend: Backend,
    options: SchedulerOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.stats = options.stats;
    this.batching = options.batching ?? true;
  }

  /**
   * Queues a request for a model version and resolves with its outputs. Rejects with the request's
   * own error, the batch's, RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (queue timeout) or
   * CANCELLED (the client went away before it ran).
   */
  async infer(model: string, version: string, config: ModelConfig, request: BackendRequest, options: ScheduleOptions = {}): Promise<Tensor[]> {
    const started = this.clock.now();
    const batcher = this.batcherFor(model, version, config);
    const batched = config.max_batch_size > 0;
    const rows = batched ? (request.inputs[0]?.shape[0] ?? 1) : 1;
    try {
      const submitted = batcher.submit(request, {
        rows,
        shapeKey: shapeKey(request, batched),
        ...(options.priority !== undefined ? { priority: options.priority } : {}),
        ...(options.timeoutUs !== undefined ? { timeoutUs: options.timeoutUs } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
        ...(options.background === true ? { background: true } : {}),
      });
      this.stats.setPending(model, version, batcher.pending);
      const outputs = await submitted;
      this.stats.finished(model, version, this.clock.now() - started);
      return outputs;
    } catch (err) {
      const error = toInferneoError(err);
      this.stats.finished(model, version, this.clock.now() - started, failureReason(error));
      throw error;
    } finally {
      this.stats.setPending(model, version, batcher.pending);
    }
  }

  /** Requests waiting in a version's queue. */
  pending(model: string, version: string): number {
    return this.batchers.get(`${model}\u0000${version}`)?.batcher.pending ?? 0;
  }

  /** Drops a version's batcher (after unload); what was queued is rejected. */
  forget(model: string, version: string): void {
    const key = `${model}\u0000${version}`;
    this.batchers.get(key)?.batcher.close();
    this.batchers.delete(key);
  }

  close(): void {
    this.closed = true;
    for (const { batcher } of this.batchers.values()) batcher.close();
    this.batchers.clear();
  }

  private batcherFor(model: string, version: string, config: ModelConfig): Batcher {
    const key = `${model}\u0000${version}`;
    const existing = this.batchers.get(key);
    // A reloaded model may come with a new config: its batcher follows (the old one drains on its own).
    if (existing !== undefined && existing.config === config) return existing.batcher;
    if (this.closed) throw new InvalidArgumentError('the scheduler is closed');
    const options = batcherOptionsFor(config, this.batching);
    options.maxInflightBatches = this.backend.inflightLimit?.(model, version, options.maxInflightBatches ?? 1) ?? options.maxInflightBatches;
    const batcher: Batcher = new DynamicBatcher<BackendRequest, Tensor[]>(
      options,
      async (requests) => {
        const responses = await this.backend.infer(model, version, requests);
        return responses.map((r) => ('error' in r ? r.error : r.outputs));
      },
      this.clock,
      {
        onDispatch: (_rows, queueMs) => {
          this.stats.dispatched(model, version, queueMs);
          this.stats.setPending(model, version, batcher.pending);
        },
        onComplete: (rows, computeMs) => this.stats.executed(model, version, rows, computeMs),
      },
    );
    this.batchers.set(key, { batcher, config });
    return batcher;
  }
}
