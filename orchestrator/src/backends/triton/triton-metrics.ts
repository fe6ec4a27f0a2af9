import { Gauge, type Registry } from 'prom-client';
import { CircuitState } from './circuit-breaker.js';

/**
 * The Triton backend's health in `/metrics`, read when Prometheus scrapes (nothing to keep in step):
 * `inferneo_triton_endpoint_circuit_state{endpoint, state}` is 1 for each endpoint's current circuit
 * state and 0 for the others (alert on `state="open"`), and
 * `inferneo_triton_endpoint_outstanding_requests{endpoint}` counts the calls in flight to it.
 */

export interface EndpointState {
  endpoint: string;
  state: CircuitState;
  outstanding: number;
}

export function registerTritonMetrics(registry: Registry, endpoints: () => EndpointState[]): void {
  new Gauge({
    name: 'inferneo_triton_endpoint_circuit_state',
    help: "Circuit breaker state of each Triton endpoint: 1 for its current state (closed, open, half-open), 0 for the others",
    labelNames: ['endpoint', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const e of endpoints()) {
        for (const state of Object.values(CircuitState)) this.set({ endpoint: e.endpoint, state }, e.state === state ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'inferneo_triton_endpoint_outstanding_requests',
    help: 'Calls in flight to each Triton endpoint',
    labelNames: ['endpoint'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const e of endpoints()) this.set({ endpoint: e.endpoint }, e.outstanding);
    },
  });
}
