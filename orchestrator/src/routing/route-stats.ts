import { Counter, type Registry, Summary } from 'prom-client';

/**
 * Per-arm statistics of routes: requests, errors and latency percentiles, exported in /metrics
 * (`inferneo_route_requests_total`, `inferneo_route_request_duration_seconds`) and summarised for
 * `GET /admin/routes/{route}/stats`. Figures are this orchestrator's own; Prometheus adds replicas up.
 * A per-arm window since the last `resetWindow` feeds the automatic canary's judgement.
 */

export interface ArmFigures {
  requests: number;
  errors: number;
  error_rate: number;
  latency_ms: { p50: number | null; p95: number | null; p99: number | null };
}

interface Window {
  requests: number;
  errors: number;
  latenciesMs: number[];
}

const WINDOW_SAMPLES = 10_000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export class RouteStats {
  private readonly requests: Counter<'route' | 'arm' | 'model' | 'version' | 'outcome'>;
  private readonly latency: Summary<'route' | 'arm'>;
  private readonly shadow: Counter<'route' | 'model' | 'version' | 'outcome'>;
  private readonly totals = new Map<string, Map<string, { requests: number; errors: number }>>();
  private readonly windows = new Map<string, Map<string, Window>>();

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'inferneo_route_requests_total',
      help: 'Requests a route sent to each arm, by outcome (success or error).',
      labelNames: ['route', 'arm', 'model', 'version', 'outcome'],
      registers: [registry],
    });
    this.latency = new Summary({
      name: 'inferneo_route_request_duration_seconds',
      help: 'Latency of requests through a route, per arm, over the last 10 minutes.',
      labelNames: ['route', 'arm'],
      percentiles: [0.5, 0.95, 0.99],
      maxAgeSeconds: 600,
      ageBuckets: 5,
      registers: [registry],
    });
    this.shadow = new Counter({
      name: 'inferneo_route_shadow_requests_total',
      help: 'Requests mirrored to a route\'s shadow, by outcome; their responses are discarded.',
      labelNames: ['route', 'model', 'version', 'outcome'],
      registers: [registry],
    });
  }

  record(route: string, arm: string, model: string, version: string, ok: boolean, seconds: number): void {
    this.requests.inc({ route, arm, model, version, outcome: ok ? 'success' : 'error' });
    this.latency.observe({ route, arm }, seconds);
    let arms = this.totals.get(route);
    if (arms === undefined) this.totals.set(route, (arms = new Map()));
    const total = arms.get(arm) ?? { requests: 0, errors: 0 };
    total.requests++;
    if (!ok) total.errors++;
    arms.set(arm, total);
    let windows = this.windows.get(route);
    if (windows === undefined) this.windows.set(route, (windows = new Map()));
    const w = windows.get(arm) ?? { requests: 0, errors: 0, latenciesMs: [] };
    w.requests++;
    if (!ok) w.errors++;
    if (w.latenciesMs.length < WINDOW_SAMPLES) w.latenciesMs.push(seconds * 1000);
    windows.set(arm, w);
  }

  recordShadow(route: string, model: string, version: string, ok: boolean): void {
    this.shadow.inc({ route, model, version, outcome: ok ? 'success' : 'error' });
  }

  /** Totals since start and latency percentiles (last 10 minutes) per arm. */
  async figures(route: string): Promise<Map<string, ArmFigures>> {
    const out = new Map<string, ArmFigures>();
    const quantiles = new Map<string, Map<number, number>>();
    for (const v of (await this.latency.get()).values) {
      const labels = v.labels as Record<string, string | number | undefined>;
      if (labels['route'] !== route || labels['quantile'] === undefined) continue;
      const arm = String(labels['arm']);
      const q = quantiles.get(arm) ?? new Map<number, number>();
      q.set(Number(labels['quantile']), Number.isFinite(v.value) ? Math.round(v.value * 1e6) / 1e3 : NaN);
      quantiles.set(arm, q);
    }
    for (const [arm, t] of this.totals.get(route) ?? []) {
      const q = quantiles.get(arm);
      const at = (p: number): number | null => {
        const value = q?.get(p);
        return value === undefined || Number.isNaN(value) ? null : value;
      };
      out.set(arm, {
        requests: t.requests,
        errors: t.errors,
        error_rate: t.requests === 0 ? 0 : t.errors / t.requests,
        latency_ms: { p50: at(0.5), p95: at(0.95), p99: at(0.99) },
      });
    }
    return out;
  }

  /** Requests, errors and p95 of an arm since the route's window was last reset. */
  window(route: string, arm: string): { requests: number; errors: number; p95_ms: number | null } {
    const w = this.windows.get(route)?.get(arm);
    if (w === undefined) return { requests: 0, errors: 0, p95_ms: null };
    return { requests: w.requests, errors: w.errors, p95_ms: percentile([...w.latenciesMs].sort((a, b) => a - b), 0.95) };
  }

  resetWindow(route: string): void {
    this.windows.delete(route);
  }

  forget(route: string): void {
    this.totals.delete(route);
    this.windows.delete(route);
  }
}
