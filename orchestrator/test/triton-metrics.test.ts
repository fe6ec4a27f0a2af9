import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { CircuitState } from '../src/backends/triton/circuit-breaker.js';
import { type EndpointState, registerTritonMetrics } from '../src/backends/triton/triton-metrics.js';

describe('triton-metrics', () => {
  it("exports each endpoint's circuit state (1 for the current one) and calls in flight, as they are at scrape time", async () => {
    const registry = new Registry();
    let states: EndpointState[] = [
      { endpoint: 'http://t1:8000', state: CircuitState.CLOSED, outstanding: 3 },
      { endpoint: 'http://t2:8000', state: CircuitState.OPEN, outstanding: 0 },
    ];
    registerTritonMetrics(registry, () => states);
    let text = await registry.metrics();
    assert.match(text, /^inferneo_triton_endpoint_circuit_state\{endpoint="http:\/\/t1:8000",state="closed"\} 1$/m);
    assert.match(text, /^inferneo_triton_endpoint_circuit_state\{endpoint="http:\/\/t1:8000",state="open"\} 0$/m);
    assert.match(text, /^inferneo_triton_endpoint_circuit_state\{endpoint="http:\/\/t2:8000",state="open"\} 1$/m);
    assert.match(text, /^inferneo_triton_endpoint_circuit_state\{endpoint="http:\/\/t2:8000",state="half-open"\} 0$/m);
    assert.match(text, /^inferneo_triton_endpoint_outstanding_requests\{endpoint="http:\/\/t1:8000"\} 3$/m);
    states = [{ endpoint: 'http://t2:8000', state: CircuitState.HALF_OPEN, outstanding: 1 }];
    text = await registry.metrics();
    assert.match(text, /^inferneo_triton_endpoint_circuit_state\{endpoint="http:\/\/t2:8000",state="half-open"\} 1$/m);
    assert.match(text, /^inferneo_triton_endpoint_outstanding_requests\{endpoint="http:\/\/t2:8000"\} 1$/m);
  });
});
