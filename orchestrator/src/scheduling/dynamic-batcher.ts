import { ErrorCode, InferneoError, ResourceExhaustedError, UnavailableError } from '../errors.js';
import type { CancelSignal } from './cancel-signal.js';
import { type Clock, systemClock } from './clock.js';

/**
 * Triton's dynamic batcher (dynamic_batch_scheduler.cc) for one model version: requests wait in
 * priority queues and are combined into batches of up to `maxBatchSize` rows, sharing a batch only
 * when their shapes agree. A batch goes out at once when it is full or reaches the largest preferred
 * size, when the oldest request has waited `maxQueueDelayUs`, or — with no delay configured — as
 * soon as an execution slot (an instance) is free. It wakes only when it can act (a request
 * arrives, a batch completes, a deadline passes) and sleeps with one timer set to the next deadline.
 * Every submitted request settles exactly once: with its own result, its own error, the batch's
 * error, a queue timeout, a cancellation or a full queue.
 */

export interface QueuePolicy {
  /** What happens to a request whose queue timeout passes: REJECT it, or DELAY it behind the others. */
  timeoutAction: 'REJECT' | 'DELAY';
  /** Queue timeout of a request; 0 = none. */
  defaultTimeoutUs: number;
  /** Whether a request's own `timeout` may shorten the default. */
  allowTimeoutOverride: boolean;
  /** Requests the queue holds at most; 0 = no limit. */
  maxQueueSize: number;
}

export interface BatcherOptions {
  /** Rows per batch at most; 0 = the model takes no batch dimension, so each request runs alone. */
  maxBatchSize: number;
  /** Batch sizes to dispatch as soon as they can be formed. @defaultValue [] */
  preferredBatchSizes?: number[];
  /** How long the oldest request may wait for a batch to fill; 0 = dispatch whenever a slot is free. @defaultValue 0 */
  maxQueueDelayUs?: number;
  /** Release results in the order batches were dispatched. @defaultValue false */
  preserveOrdering?: boolean;
  /** Priority levels 1..N (1 is highest); 0 = one level. @defaultValue 0 */
  priorityLevels?: number;
  /** Level of requests that name none. @defaultValue the lowest level */
  defaultPriorityLevel?: number;
  /** @defaultValue REJECT, no timeout, no override, unbounded */
  defaultQueuePolicy?: Partial<QueuePolicy>;
  /** Policies of particular levels. @defaultValue none */
  priorityQueuePolicy?: Map<number, Partial<QueuePolicy>>;
  /** Batches executing at once (the version's instance count). @defaultValue 1 */
  maxInflightBatches?: number;
  /** Used in error messages. @defaultValue 'model' */
  name?: string;
}

export interface SubmitOptions {
  /** Rows this request contributes (its batch dimension); 1 for models that do not batch. */
  rows: number;
  /** Requests batch together only when their keys are equal (same inputs, dtypes and non-batch dims). */
  shapeKey: string;
  /** Priority level (1 = highest); 0 or undefined = the default level. */
  priority?: number;
  /** The request's own queue timeout in µs (only shorter than the default, and only when allowed). */
  timeoutUs?: number;
  /** Cancelling removes the request from the queue if it has not been dispatched. */
  signal?: CancelSignal;
  /**
   * Background work (batch jobs): queued below every priority level and behind delayed requests,
   * so that it only takes what online requests leave — it still fills their batches' free rows.
   * It has no queue timeout and does not count against a level's `max_queue_size`.
   */
  background?: boolean;
}

/** Runs a batch; resolves with one result or Error per request, in order. */
export type BatchExecutor<Req, Res> = (requests: Req[]) => Promise<(Res | Error)[]>;

export interface BatchEvents {
  /** A batch was dispatched: its rows, requests and each request's time in the queue (ms). */
  onDispatch?: (rows: number, queueMs: number[]) => void;
  /** A batch finished: its rows and execution time (ms), and whether it failed as a whole. */
  onComplete?: (rows: number, computeMs: number, failed: boolean) => void;
}

const ItemState = { QUEUED: 0, DISPATCHED: 1, SETTLED: 2 } as const;

interface Item<Req, Res> {
  request: Req;
  rows: number;
  shapeKey: string;
  level: number;
  enqueuedAt: number;
  /** When its queue timeout passes; Infinity when none. */
  deadline: number;
  action: 'REJECT' | 'DELAY';
  delayed: boolean;
  background: boolean;
  state: (typeof ItemState)[keyof typeof ItemState];
  resolve: (value: Res) => void;
  reject: (error: Error) => void;
  cleanup: (() => void) | undefined;
}

/**
 * A FIFO that drops items lazily: one that was dispatched, settled or moved to another queue stays
 * in the array until it reaches the head, and `accept` says which ones are still this queue's.
 */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  constructor(private readonly accept: (item: T) => boolean) {}
  push(item: T): void {
    this.items.push(item);
  }
  /** Live items in order, from the head. */
  *live(): Generator<T> {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i]!;
      if (this.accept(item)) yield item;
    }
  }
  first(): T | undefined {
    while (this.head < this.items.length && !this.accept(this.items[this.head]!)) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }
}

function resolvePolicy(base: Partial<QueuePolicy> | undefined, fallback: QueuePolicy): QueuePolicy {
  return {
    timeoutAction: base?.timeoutAction ?? fallback.timeoutAction,
    defaultTimeoutUs: base?.defaultTimeoutUs ?? fallback.defaultTimeoutUs,
    allowTimeoutOverride: base?.allowTimeoutOverride ?? fallback.allowTimeoutOverride,
    maxQueueSize: base?.maxQueueSize ?? fallback.maxQueueSize,
  };
}

export class DynamicBatcher<Req, Res> {
  private readonly maxBatchSize: number;
  private readonly preferred: number[];
  private readonly maxQueueDelayMs: number;
  private readonly preserveOrdering: boolean;
  private readonly levels: number;
  private readonly defaultLevel: number;
  private readonly policies: QueuePolicy[];
  private readonly maxInflight: number;
  private readonly name: string;
  /**
   * One FIFO per level (index 0 = level 1), then one for requests delayed by their timeout, then
   * one for background requests: the order in which heads are served.
   */
  private readonly queues: Fifo<Item<Req, Res>>[];
  private readonly queuedPerLevel: number[];
  private queued = 0;
  /** Queued requests with a queue timeout: without any, the timeout scan is skipped. */
  private timed = 0;
  private inflight = 0;
  /** Batches executing whose head was a background request. */
  private backgroundInflight = 0;
  private timer: unknown;
  private timerAt = Infinity;
  private closed = false;
  /** Settles when the previous batch's results have been released (preserve_ordering). */
  private releaseChain: Promise<void> = Promise.resolve();

  constructor(
    options: BatcherOptions,
    private readonly executor: BatchExecutor<Req, Res>,
    private readonly clock: Clock = systemClock,
    private readonly events: BatchEvents = {},
  ) {
    this.maxBatchSize = options.maxBatchSize;
    this.preferred = [...(options.preferredBatchSizes ?? [])].filter((p) => p > 0 && (this.maxBatchSize === 0 || p <= this.maxBatchSize)).sort((a, b) => a - b);
    this.maxQueueDelayMs = (options.maxQueueDelayUs ?? 0) / 1000;
    this.preserveOrdering = options.preserveOrdering ?? false;
    this.levels = Math.max(1, options.priorityLevels ?? 0);
    this.defaultLevel = Math.min(this.levels, Math.max(1, options.defaultPriorityLevel || this.levels));
    const base = resolvePolicy(options.defaultQueuePolicy, { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 0 });
    this.policies = Array.from({ length: this.levels }, (_, i) => resolvePolicy(options.priorityQueuePolicy?.get(i + 1), base));
    this.maxInflight = Math.max(1, options.maxInflightBatches ?? 1);
    this.name = options.name ?? 'model';
    this.queues = Array.from(
      { length: this.levels + 2 },
      (_, i) =>
        new Fifo<Item<Req, Res>>(
          i < this.levels
            ? (item) => item.state === ItemState.QUEUED && !item.delayed && !item.background
            : i === this.levels
              ? (item) => item.state === ItemState.QUEUED && item.delayed
              : (item) => item.state === ItemState.QUEUED && item.background,
        ),
    );
    this.queuedPerLevel = new Array<number>(this.levels).fill(0);
  }

  /** Requests waiting in the queues (not yet dispatched). */
  get pending(): number {
    return this.queued;
  }

  /** Batches executing now. */
  get executing(): number {
    return this.inflight;
  }

  submit(request: Req, options: SubmitOptions): Promise<Res> {
    if (this.closed) return Promise.reject(new UnavailableError(`the scheduler of ${this.name} is closed`));
    const requested = options.priority ?? 0;
    if (!Number.isInteger(requested) || requested < 0 || requested > this.levels) {
      return Promise.reject(
        new InferneoError(ErrorCode.INVALID_ARGUMENT, `priority ${requested} is outside 1..${this.levels} (the priority levels of ${this.name}); 0 means the default`),
      );
    }
    if (this.maxBatchSize > 0 && options.rows > this.maxBatchSize) {
      return Promise.reject(new InferneoError(ErrorCode.INVALID_ARGUMENT, `batch size ${options.rows} exceeds max_batch_size ${this.maxBatchSize} of ${this.name}`));
    }
    const level = requested === 0 ? this.defaultLevel : requested;
    const policy = this.policies[level - 1]!;
    const background = options.background === true;
    if (!background && policy.maxQueueSize > 0 && this.queuedPerLevel[level - 1]! >= policy.maxQueueSize) {
      return Promise.reject(
        new ResourceExhaustedError(`the queue of ${this.name} is full (${policy.maxQueueSize} requests at priority ${level}); retry later`),
      );
    }
    if (options.signal?.aborted === true) return Promise.reject(cancelled(this.name));
    let timeoutUs = background ? 0 : policy.defaultTimeoutUs;
    if (!background && options.timeoutUs !== undefined && options.timeoutUs > 0 && policy.allowTimeoutOverride && (timeoutUs === 0 || options.timeoutUs < timeoutUs)) {
      timeoutUs = options.timeoutUs;
    }
    const now = this.clock.now();
    return new Promise<Res>((resolve, reject) => {
      const item: Item<Req, Res> = {
        request,
        rows: this.maxBatchSize === 0 ? 1 : options.rows,
        shapeKey: options.shapeKey,
        level,
        enqueuedAt: now,
        deadline: timeoutUs > 0 ? now + timeoutUs / 1000 : Infinity,
        action: policy.timeoutAction,
        delayed: false,
        background,
        state: ItemState.QUEUED,
        resolve,
        reject,
        cleanup: undefined,
      };
      if (options.signal !== undefined) item.cleanup = options.signal.onCancel(() => this.cancel(item));
      if (background) this.queues[this.levels + 1]!.push(item);
      else {
        this.queues[level - 1]!.push(item);
        this.queuedPerLevel[level - 1]!++;
      }
      this.queued++;
      if (item.deadline !== Infinity) this.timed++;
      this.pump();
    });
  }

  /** Rejects everything still queued with UNAVAILABLE; batches executing finish. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimer();
    for (const q of this.queues) for (const item of q.live()) this.settle(item, undefined, new UnavailableError(`the scheduler of ${this.name} is closing`));
  }

  // -- internals ------------------------------------------------------------------------------

  private cancel(item: Item<Req, Res>): void {
    if (item.state !== ItemState.QUEUED) return; // dispatched requests are computed anyway
    this.settle(item, undefined, cancelled(this.name));
    this.pump();
  }

  private settle(item: Item<Req, Res>, value: Res | undefined, error: Error | undefined): void {
    if (item.state === ItemState.SETTLED) return;
    if (item.state === ItemState.QUEUED) this.dequeued(item);
    item.state = ItemState.SETTLED;
    item.cleanup?.();
    if (error !== undefined) item.reject(error);
    else item.resolve(value as Res);
  }

  private dequeued(item: Item<Req, Res>): void {
    this.queued--;
    if (item.deadline !== Infinity) this.timed--;
    if (!item.delayed && !item.background) this.queuedPerLevel[item.level - 1]!--;
  }

  /** Applies queue timeouts that have passed; returns the earliest one still ahead. */
  private expire(now: number): number {
    let next = Infinity;
    if (this.timed === 0) return next;
    for (let l = 0; l < this.levels; l++) {
      for (const item of this.queues[l]!.live()) {
        if (item.deadline > now) {
          next = Math.min(next, item.deadline);
          continue;
        }
        if (item.action === 'REJECT') {
          this.settle(item, undefined, new UnavailableError(`request timed out after waiting ${((now - item.enqueuedAt) * 1000).toFixed(0)} µs in the queue of ${this.name}`));
        } else {
          // DELAY: it stays, but behind every request that has not timed out.
          this.timed--;
          this.queuedPerLevel[item.level - 1]!--;
          item.delayed = true;
          item.deadline = Infinity;
          this.queues[this.levels]!.push(item);
        }
      }
    }
    return next;
  }

  /** The next request to serve: highest priority, oldest first; then delayed ones; background ones last. */
  private headItem(): Item<Req, Res> | undefined {
    for (const q of this.queues) {
      const item = q.first();
      if (item !== undefined) return item;
    }
    return undefined;
  }

  /** Requests that can join the head's batch, in queue order, up to maxBatchSize rows. */
  private gather(head: Item<Req, Res>): Item<Req, Res>[] {
    const batch: Item<Req, Res>[] = [head];
    if (this.maxBatchSize === 0) return batch;
    let rows = head.rows;
    for (const q of this.queues) {
      for (const item of q.live()) {
        if (rows >= this.maxBatchSize) return batch;
        if (item === head || item.shapeKey !== head.shapeKey || rows + item.rows > this.maxBatchSize) continue;
        batch.push(item);
        rows += item.rows;
      }
    }
    return batch;
  }

  /** Forms and dispatches batches while a slot is free and a batch is due; then sleeps until the next deadline. */
  private pump(): void {
    if (this.closed) return;
    const now = this.clock.now();
    let wakeAt = this.expire(now);
    while (this.inflight < this.maxInflight) {
      const head = this.headItem();
      if (head === undefined) break;
      // With several instances, background batches leave one free for online requests.
      if (head.background && this.maxInflight > 1 && this.backgroundInflight >= this.maxInflight - 1) break;
      let batch = this.gather(head);
      const rows = batch.reduce((sum, i) => sum + i.rows, 0);
      const largestPreferred = this.preferred[this.preferred.length - 1];
      const full = this.maxBatchSize === 0 || rows >= this.maxBatchSize;
      const preferredReached = largestPreferred !== undefined && rows >= largestPreferred;
      const delayDue = head.enqueuedAt + this.maxQueueDelayMs;
      if (!full && !preferredReached && this.maxQueueDelayMs > 0 && now < delayDue) {
        wakeAt = Math.min(wakeAt, delayDue);
        break;
      }
      if (!full && this.preferred.length > 0) batch = this.trimToPreferred(batch);
      this.dispatch(batch, now);
    }
    this.armTimer(wakeAt, now);
  }

  /** Cuts a batch to the largest preferred size its prefix reaches exactly, if any does. */
  private trimToPreferred(batch: Item<Req, Res>[]): Item<Req, Res>[] {
    const preferred = new Set(this.preferred);
    let rows = 0;
    let cut = 0;
    batch.forEach((item, i) => {
      rows += item.rows;
      if (preferred.has(rows)) cut = i + 1;
    });
    return cut > 0 ? batch.slice(0, cut) : batch;
  }

  private dispatch(batch: Item<Req, Res>[], now: number): void {
    for (const item of batch) {
      this.dequeued(item);
      item.state = ItemState.DISPATCHED;
    }
    this.inflight++;
    const background = batch[0]!.background;
    if (background) this.backgroundInflight++;
    const rows = batch.reduce((sum, i) => sum + i.rows, 0);
    this.events.onDispatch?.(rows, batch.map((i) => now - i.enqueuedAt));
    const started = this.clock.now();
    const previous = this.releaseChain;
    const run = this.executor(batch.map((i) => i.request)).then(
      (results) => ({ results, error: undefined as Error | undefined }),
      (error: unknown) => ({ results: undefined, error: error instanceof Error ? error : new Error(String(error)) }),
    );
    const released = run.then(async ({ results, error }) => {
      this.events.onComplete?.(rows, this.clock.now() - started, error !== undefined);
      this.inflight--;
      if (background) this.backgroundInflight--;
      if (this.preserveOrdering) await previous;
      batch.forEach((item, i) => {
        const result = results?.[i];
        if (error !== undefined) this.settle(item, undefined, error);
        else if (result === undefined) this.settle(item, undefined, new InferneoError(ErrorCode.INTERNAL, `the backend returned ${results?.length ?? 0} results for a batch of ${batch.length}`));
        else if (result instanceof Error) this.settle(item, undefined, result);
        else this.settle(item, result, undefined);
      });
      this.pump();
    });
    if (this.preserveOrdering) this.releaseChain = released;
  }

  private armTimer(at: number, now: number): void {
    if (at === this.timerAt) return;
    this.clearTimer();
    if (at === Infinity) return;
    this.timerAt = at;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, at - now);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}

function cancelled(name: string): InferneoError {
  return new InferneoError(ErrorCode.CANCELLED, `the request to ${name} was cancelled before it ran`);
}
