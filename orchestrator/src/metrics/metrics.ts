import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * The Prometheus registry behind `GET /metrics`. One per orchestrator (tests run several in one
 * process); each area registers its metrics on it (routing: `inferneo_route_*`; scheduling later:
 * Triton's `nv_inference_*`), so the names live beside the code that updates them.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'inferneo_process_' });
  return registry;
}

export type { Registry };
