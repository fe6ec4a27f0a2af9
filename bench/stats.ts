/** Latency summaries for the benchmarks: percentiles over recorded durations, throughput over wall time. */

export interface LatencySummary {
  requests: number;
  errors: number;
  seconds: number;
  throughput_rps: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarize(latenciesMs: number[], errors: number, seconds: number): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    requests: sorted.length,
    errors,
    seconds: round(seconds),
    throughput_rps: round(sorted.length / seconds),
    p50_ms: round(percentile(sorted, 50)),
    p95_ms: round(percentile(sorted, 95)),
    p99_ms: round(percentile(sorted, 99)),
    mean_ms: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
  };
}

/** Hooks around the measured part of a run. */
export interface MeasureWindow {
  begin?: () => void | Promise<void>;
  end?: () => void | Promise<void>;
}

/**
 * Closed-loop load: `concurrency` callers each issue `call()` back to back for `durationMs` after a
 * warm-up, recording each call's latency. Errors are counted, not timed. `window` is told when the
 * measured part begins and ends (after the warm-up), e.g. to read CPU counters over exactly that span.
 */
export async function closedLoop(
  call: () => Promise<void>,
  concurrency: number,
  durationMs: number,
  warmupMs = 500,
  window: MeasureWindow = {},
): Promise<LatencySummary> {
  const warmEnd = Date.now() + warmupMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < warmEnd) await call().catch(() => undefined);
    }),
  );
  const latencies: number[] = [];
  let errors = 0;
  await window.begin?.();
  const start = process.hrtime.bigint();
  const end = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        try {
          await call();
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await window.end?.();
  return summarize(latencies, errors, seconds);
}
