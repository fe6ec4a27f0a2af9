export { backoffDelay } from './backoff.js';
export { CircuitBreaker, type CircuitBreakerEvents, CircuitState } from './circuit-breaker.js';
export { TritonGrpcClient } from './client-grpc.js';
export { TritonHttpClient } from './client-http.js';
export { type EndpointPicker, LeastOutstandingPicker } from './endpoint-picker.js';
export { TritonBackend, type TritonBackendDeps, type TritonBackendEvents } from './triton-backend.js';
export type { TritonClient, TritonIndexEntry, TritonInferCall } from './triton-client.js';
export { resolveTritonOptions, type TritonBackendOptions, type TritonProtocol } from './triton-options.js';
