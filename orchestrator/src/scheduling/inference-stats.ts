import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Server-side figures per model version, kept twice on purpose: as Prometheus metrics with Triton's
 * names and meanings (`nv_inference_*`, so existing Triton dashboards work), and as Triton's
 * statistics JSON for `GET /v2/models/{m}/stats` (what perf_analyzer reads).
 */

export interface Duration {
  count: number;
  ns: number;
}

/** One model version's statistics, in Triton's format. */
export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: {
    success: Duration;
    fail: Duration;
    queue: Duration;
    compute_input: Duration;
    compute_infer: Duration;
    compute_output: Duration;
    cache_hit: Duration;
    cache_miss: Duration;
  };
  batch_stats: { batch_size: number; compute_input: Duration; compute_infer: Duration; compute_output: Duration }[];
  memory_usage: unknown[];
}

/** Why a request failed, as Triton's `nv_inference_request_failure{reason}` says it. */
export type FailureReason = 'REJECTED' | 'CANCELED' | 'BACKEND' | 'OTHER';

const zero = (): Duration => ({ count: 0, ns: 0 });

interface Child {
  inc(value?: number): void;
}

interface Entry {
  stats: ModelStatistics;
  success: Child;
  inferenceCount: Child;
  execCount: Child;
  pending: { set(value: number): void };
  requestDuration: Child;
  queueDuration: Child;
  computeDuration: Child;
  batchSize: { observe(value: number): void };
}

export class InferenceStats {
  private readonly success: Counter<'model' | 'version'>;
  private readonly failure: Counter<'model' | 'version' | 'reason'>;
  private readonly inferenceCount: Counter<'model' | 'version'>;
  private readonly execCount: Counter<'model' | 'version'>;
  private readonly pending: Gauge<'model' | 'version'>;
  private readonly requestDuration: Counter<'model' | 'version'>;
  private readonly queueDuration: Counter<'model' | 'version'>;
  private readonly computeDuration: Counter<'model' | 'version'>;
  private readonly batchSize: Histogram<'model' | 'version'>;
  private readonly byVersion = new Map<string, Entry>();

  constructor(registry: Registry) {
    const common = { labelNames: ['model', 'version'] as const, registers: [registry] };
    this.success = new Counter({ name: 'nv_inference_request_success', help: 'Number of successful inference requests, all batch sizes', ...common });
    this.failure = new Counter({
      name: 'nv_inference_request_failure',
      help: 'Number of failed inference requests, all batch sizes',
      labelNames: ['model', 'version', 'reason'],
      registers: [registry],
    });
    this.inferenceCount = new Counter({ name: 'nv_inference_count', help: 'Number of inferences performed (rows; a batch of N counts N)', ...common });
    this.execCount = new Counter({ name: 'nv_inference_exec_count', help: 'Number of model executions performed (batches)', ...common });
    this.pending = new Gauge({ name: 'nv_inference_pending_request_count', help: 'Instantaneous number of pending requests awaiting execution', ...common });
    this.requestDuration = new Counter({ name: 'nv_inference_request_duration_us', help: 'Cumulative inference request duration in microseconds (includes cached requests)', ...common });
    this.queueDuration = new Counter({ name: 'nv_inference_queue_duration_us', help: 'Cumulative inference queuing duration in microseconds', ...common });
    this.computeDuration = new Counter({ name: 'nv_inference_compute_infer_duration_us', help: 'Cumulative compute inference duration in microseconds', ...common });
    this.batchSize = new Histogram({
      name: 'inferneo_batch_size',
      help: 'Rows per executed batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      ...common,
    });
  }

  /** The statistics of a version, with its labelled metric children looked up once (not per request). */
  private entry(model: string, version: string): Entry {
    const key = `${model}\u0000${version}`;
    let e = this.byVersion.get(key);
    if (e === undefined) {
      const labels = { model, version };
      e = {
        stats: {
          name: model,
          version,
          last_inference: 0,
          inference_count: 0,
          execution_count: 0,
          inference_stats: { success: zero(), fail: zero(), queue: zero(), compute_input: zero(), compute_infer: zero(), compute_output: zero(), cache_hit: zero(), cache_miss: zero() },
          batch_stats: [],
          memory_usage: [],
        },
        success: this.success.labels(labels),
        inferenceCount: this.inferenceCount.labels(labels),
        execCount: this.execCount.labels(labels),
        pending: this.pending.labels(labels),
        requestDuration: this.requestDuration.labels(labels),
        queueDuration: this.queueDuration.labels(labels),
        computeDuration: this.computeDuration.labels(labels),
        batchSize: this.batchSize.labels(labels),
      };
      this.byVersion.set(key, e);
    }
    return e;
  }

  setPending(model: string, version: string, count: number): void {
    this.entry(model, version).pending.set(count);
  }

  /** A batch was dispatched after its requests waited `queueMs` each. */
  dispatched(model: string, version: string, queueMs: number[]): void {
    const e = this.entry(model, version);
    let total = 0;
    for (const ms of queueMs) total += ms;
    e.stats.inference_stats.queue.count += queueMs.length;
    e.stats.inference_stats.queue.ns += Math.round(total * 1e6);
    e.queueDuration.inc(total * 1000);
  }

  /** A batch of `rows` finished executing in `computeMs`. */
  executed(model: string, version: string, rows: number, computeMs: number): void {
    const e = this.entry(model, version);
    const s = e.stats;
    const ns = Math.round(computeMs * 1e6);
    s.execution_count++;
    s.inference_count += rows;
    s.last_inference = Date.now();
    for (const key of ['compute_input', 'compute_infer', 'compute_output'] as const) s.inference_stats[key].count++;
    s.inference_stats.compute_infer.ns += ns;
    let batch = s.batch_stats.find((b) => b.batch_size === rows);
    if (batch === undefined) {
      batch = { batch_size: rows, compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      s.batch_stats.push(batch);
      s.batch_stats.sort((a, b) => a.batch_size - b.batch_size);
    }
    batch.compute_input.count++;
    batch.compute_output.count++;
    batch.compute_infer.count++;
    batch.compute_infer.ns += ns;
    e.execCount.inc();
    e.inferenceCount.inc(rows);
    e.computeDuration.inc(computeMs * 1000);
    e.batchSize.observe(rows);
  }

  /** A request finished, end to end in `durationMs`, successfully or for `reason`. */
  finished(model: string, version: string, durationMs: number, failure?: FailureReason): void {
    const e = this.entry(model, version);
    const d = failure === undefined ? e.stats.inference_stats.success : e.stats.inference_stats.fail;
    d.count++;
    d.ns += Math.round(durationMs * 1e6);
    if (failure === undefined) e.success.inc();
    else this.failure.inc({ model, version, reason: failure });
    e.requestDuration.inc(durationMs * 1000);
  }

  /** Statistics of a model's versions (all, or one), in Triton's format. */
  statistics(model: string, versions: string[]): ModelStatistics[] {
    return versions.map((v) => structuredClone(this.entry(model, v).stats));
  }
}
