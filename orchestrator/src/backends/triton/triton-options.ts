import { ConfigError } from '../../errors.js';

/**
 * Everything that tunes the Triton backend, with its defaults, applied and checked in one place
 * (`resolveTritonOptions`) so that a bad value stops start-up with a message naming it.
 */

export type TritonProtocol = 'http' | 'grpc';

export interface CircuitBreakerOptions {
  /** Consecutive failures (connection errors, UNAVAILABLE, timeouts) that open the circuit. @defaultValue 5 */
  failures?: number;
  /** How long an open circuit fails calls fast before a probe may close it. @defaultValue 5000 */
  cooldownMs?: number;
}

export interface RetryOptions {
  /** Further attempts after a call failed with a connection error or UNAVAILABLE. @defaultValue 2 */
  retries?: number;
  /** Delay before the first retry; each further retry doubles it. @defaultValue 50 */
  backoffMs?: number;
  /** Upper bound of one backoff delay. @defaultValue 1000 */
  maxBackoffMs?: number;
}

export interface TritonBackendOptions {
  /**
   * Triton servers that serve the same model repository: `http://host:8000` (HTTP) or `host:8001`
   * (gRPC; `grpc://host:8001` is accepted too). Required, at least one.
   */
  endpoints: string[];
  /** Protocol spoken to every endpoint. @defaultValue 'http' */
  protocol?: TritonProtocol;
  /** Time Triton has to answer one inference call. @defaultValue 60000 */
  requestTimeoutMs?: number;
  /** Time Triton has to load (or unload) a model. @defaultValue 120000 */
  loadTimeoutMs?: number;
  /** Time a health probe (`/v2/health/ready`) may take. @defaultValue 2000 */
  probeTimeoutMs?: number;
  retry?: RetryOptions;
  breaker?: CircuitBreakerOptions;
  /** HTTP connections kept open per endpoint (keep-alive pool). @defaultValue 32 */
  connections?: number;
  /**
   * Executions of a version Inferneo keeps in flight per Triton model instance and endpoint. Triton
   * queues and schedules by itself; more than one per instance hides the round trip. @defaultValue 4
   */
  inflightPerInstance?: number;
}

export interface ResolvedTritonOptions {
  endpoints: string[];
  protocol: TritonProtocol;
  requestTimeoutMs: number;
  loadTimeoutMs: number;
  probeTimeoutMs: number;
  retry: Required<RetryOptions>;
  breaker: Required<CircuitBreakerOptions>;
  connections: number;
  inflightPerInstance: number;
}

function positiveInt(value: number, key: string, min = 1): number {
  if (!Number.isSafeInteger(value) || value < min) throw new ConfigError(`triton: ${key} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return value;
}

/** Normalises an endpoint for its protocol: `http://host:port` for HTTP, `host:port` for gRPC. */
export function normaliseEndpoint(endpoint: string, protocol: TritonProtocol): string {
  const raw = endpoint.trim();
  if (protocol === 'grpc') {
    const address = raw.replace(/^grpc:\/\//, '').replace(/\/+$/, '');
    if (!/^[^\s/:]+:\d{1,5}$/.test(address)) {
      throw new ConfigError(`triton: endpoint ${JSON.stringify(endpoint)} is not a gRPC address; expected host:port (e.g. triton:8001)`);
    }
    return address;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`triton: endpoint ${JSON.stringify(endpoint)} is not an HTTP URL; expected e.g. http://triton:8000`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '')) {
    throw new ConfigError(`triton: endpoint ${JSON.stringify(endpoint)} must be http(s)://host:port without a path`);
  }
  return url.origin;
}

export function resolveTritonOptions(options: TritonBackendOptions): ResolvedTritonOptions {
  const protocol = options.protocol ?? 'http';
  if (protocol !== 'http' && protocol !== 'grpc') throw new ConfigError(`triton: protocol must be 'http' or 'grpc', got ${JSON.stringify(protocol)}`);
  if (options.endpoints.length === 0) throw new ConfigError('triton: at least one endpoint is needed');
  const endpoints = [...new Set(options.endpoints.map((e) => normaliseEndpoint(e, protocol)))];
  const retry = {
    retries: positiveInt(options.retry?.retries ?? 2, 'retries', 0),
    backoffMs: positiveInt(options.retry?.backoffMs ?? 50, 'retry_backoff_ms'),
    maxBackoffMs: positiveInt(options.retry?.maxBackoffMs ?? 1000, 'retry_max_backoff_ms'),
  };
  if (retry.maxBackoffMs < retry.backoffMs) {
    throw new ConfigError(`triton: retry_max_backoff_ms (${retry.maxBackoffMs}) must be >= retry_backoff_ms (${retry.backoffMs})`);
  }
  return {
    endpoints,
    protocol,
    requestTimeoutMs: positiveInt(options.requestTimeoutMs ?? 60_000, 'request_timeout_ms'),
    loadTimeoutMs: positiveInt(options.loadTimeoutMs ?? 120_000, 'load_timeout_ms'),
    probeTimeoutMs: positiveInt(options.probeTimeoutMs ?? 2_000, 'probe_timeout_ms'),
    retry,
    breaker: {
      failures: positiveInt(options.breaker?.failures ?? 5, 'breaker.failures'),
      cooldownMs: positiveInt(options.breaker?.cooldownMs ?? 5_000, 'breaker.cooldown_ms'),
    },
    connections: positiveInt(options.connections ?? 32, 'connections'),
    inflightPerInstance: positiveInt(options.inflightPerInstance ?? 4, 'inflight_per_instance'),
  };
}
