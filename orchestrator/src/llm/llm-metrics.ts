import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Metrics of text generation per model version, named as vLLM names them (`vllm:` → `inferneo_`)
 * so that vLLM dashboards carry over: time to first token, time per output token (the gap between
 * tokens), end-to-end latency, tokens generated and read, and requests running (holding a sequence
 * slot on a worker) or waiting (for one).
 */

/** Seconds; the low end resolves single-token steps of a small model on a CPU (~10 ms). */
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40];
const TPOT_BUCKETS = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
const E2E_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120];

type Labels = 'model' | 'version';

/** The metric children of one version, looked up once. */
export interface VersionMetrics {
  ttft: { observe(seconds: number): void };
  tpot: { observe(seconds: number): void };
  e2e: { observe(seconds: number): void };
  generationTokens: { inc(n?: number): void };
  promptTokens: { inc(n?: number): void };
  running: { inc(): void; dec(): void };
  waiting: { inc(): void; dec(): void };
  finished(reason: string): void;
  failed(code: string): void;
}

export class LlmMetrics {
  private readonly ttft: Histogram<Labels>;
  private readonly tpot: Histogram<Labels>;
  private readonly e2e: Histogram<Labels>;
  private readonly generationTokens: Counter<Labels>;
  private readonly promptTokens: Counter<Labels>;
  private readonly running: Gauge<Labels>;
  private readonly waiting: Gauge<Labels>;
  private readonly success: Counter<Labels | 'finished_reason'>;
  private readonly failure: Counter<Labels | 'code'>;
  private readonly byVersion = new Map<string, VersionMetrics>();

  constructor(registry: Registry) {
    const common = { labelNames: ['model', 'version'] as const, registers: [registry] };
    this.ttft = new Histogram({ name: 'inferneo_time_to_first_token_seconds', help: 'Time from the request to its first generated token', buckets: TTFT_BUCKETS, ...common });
    this.tpot = new Histogram({
      name: 'inferneo_time_per_output_token_seconds',
      help: 'Time between two generated tokens of one sequence (inter-token latency)',
      buckets: TPOT_BUCKETS,
      ...common,
    });
    this.e2e = new Histogram({ name: 'inferneo_e2e_request_latency_seconds', help: 'Time from the request to its last token', buckets: E2E_BUCKETS, ...common });
    this.generationTokens = new Counter({ name: 'inferneo_generation_tokens_total', help: 'Tokens generated (its rate is tokens/s)', ...common });
    this.promptTokens = new Counter({ name: 'inferneo_prompt_tokens_total', help: 'Prompt tokens read (prefill)', ...common });
    this.running = new Gauge({ name: 'inferneo_num_requests_running', help: 'Generation requests holding a sequence slot on a worker', ...common });
    this.waiting = new Gauge({ name: 'inferneo_num_requests_waiting', help: 'Generation requests waiting for a sequence slot', ...common });
    this.success = new Counter({
      name: 'inferneo_request_success_total',
      help: 'Generation requests that finished, by finish reason (stop, length, cancelled)',
      labelNames: ['model', 'version', 'finished_reason'],
      registers: [registry],
    });
    this.failure = new Counter({
      name: 'inferneo_request_failure_total',
      help: 'Generation requests that failed, by error code',
      labelNames: ['model', 'version', 'code'],
      registers: [registry],
    });
  }

  version(model: string, version: string): VersionMetrics {
    const key = `${model}\u0000${version}`;
    let m = this.byVersion.get(key);
    if (m === undefined) {
      const labels = { model, version };
      // Gauges are exported from the first request on, at 0 when nothing runs or waits.
      const running = this.running.labels(labels);
      const waiting = this.waiting.labels(labels);
      running.set(0);
      waiting.set(0);
      m = {
        ttft: this.ttft.labels(labels),
        tpot: this.tpot.labels(labels),
        e2e: this.e2e.labels(labels),
        generationTokens: this.generationTokens.labels(labels),
        promptTokens: this.promptTokens.labels(labels),
        running,
        waiting,
        finished: (reason) => this.success.labels({ ...labels, finished_reason: reason }).inc(),
        failed: (code) => this.failure.labels({ ...labels, code }).inc(),
      };
      this.byVersion.set(key, m);
    }
    return m;
  }
}
