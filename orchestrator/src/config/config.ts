import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * The orchestrator's configuration: one schema with every default, read from a YAML file
 * (`worker-config/inferneo.yaml` unless `INFERNEO_CONFIG` names another) and overridden by
 * environment variables. It is validated once, at start-up, with messages that name the key, where
 * the value came from and the value itself.
 */

const port = z.int().min(0).max(65535);
const positiveMs = z.int().min(1);

export const configSchema = z
  .object({
    http: z
      .object({
        /** Interface the data plane and admin API listen on. @defaultValue '0.0.0.0' */
        host: z.string().min(1).default('0.0.0.0'),
        /** HTTP port (KServe v2 / Triton HTTP, admin, metrics). 0 = any free port. @defaultValue 8000 */
        port: port.default(8000),
        /** Largest request body accepted; larger ones get 413. @defaultValue 67108864 (64 MiB) */
        max_request_bytes: z.int().min(1024).default(64 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    grpc: z
      .object({
        /** gRPC port (Triton's GRPCInferenceService). @defaultValue 8001 */
        port: port.default(8001),
      })
      .strict()
      .prefault({}),
    /** Model repository in Triton's layout. @defaultValue './model-repository' */
    model_repository: z.string().min(1).default('./model-repository'),
    /** Bearer token for /admin; empty = read from, or generated into, `admin_token_file`. @defaultValue '' */
    admin_token: z.string().default(''),
    /** Where a generated admin token is kept (owner-only). @defaultValue '.inferneo/admin-token' */
    admin_token_file: z.string().min(1).default('.inferneo/admin-token'),
    /** Prefix of every Redis key and channel, so that installations can share a Redis. @defaultValue 'inferneo:' */
    redis_prefix: z.string().min(1).max(64).default('inferneo:'),
    /** Redis holding the registry, routes and job queues. @defaultValue 'redis://127.0.0.1:6379' */
    redis_url: z
      .string()
      .regex(/^rediss?:\/\/[^\s]+$/, 'expected a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    models: z
      .object({
        /** Models loaded at start: names, or '*' for every model in the repository. @defaultValue ['*'] */
        startup: z.array(z.string().min(1)).default(['*']),
        /** How long a request waits for a version it causes to load (lazy loading). @defaultValue 60000 */
        lazy_load_timeout_ms: positiveMs.default(60_000),
        /** How long unloading waits for a version's in-flight requests. @defaultValue 30000 */
        drain_timeout_ms: positiveMs.default(30_000),
      })
      .strict()
      .prefault({}),
    scheduling: z
      .object({
        /**
         * Dynamic batching as each model's config.pbtxt asks; false runs every request alone (for
         * comparisons). @defaultValue true
         */
        batching: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        /**
         * Run BullMQ workers for batch jobs in this process. Off, this orchestrator only accepts and
         * reports jobs; `inferneo jobs-worker` processes (or other orchestrators) run them. @defaultValue true
         */
        workers: z.boolean().default(true),
        /** Chunks one process runs at once (BullMQ Worker `concurrency`). @defaultValue 2 */
        concurrency: z.int().min(1).max(256).default(2),
        /** Chunks started per `rate_limit_window_ms` across all workers (BullMQ `limiter`); 0 = no limit. @defaultValue 0 */
        rate_limit_chunks: z.int().min(0).default(0),
        /** @defaultValue 1000 */
        rate_limit_window_ms: positiveMs.default(1000),
        /** Rows of one chunk queued in the batcher at once. @defaultValue 256 */
        rows_in_flight: z.int().min(1).max(100_000).default(256),
        /** Attempts per chunk; rows that failed transiently are retried with exponential backoff. @defaultValue 5 */
        attempts: z.int().min(1).max(100).default(5),
        /** First retry delay; it doubles with each attempt. @defaultValue 1000 */
        backoff_ms: positiveMs.default(1000),
        /**
         * How long a worker's claim on a chunk lasts without renewal (BullMQ `lockDuration`, also its
         * stalled-check interval): the chunks of a crashed worker run again after one to two of these. @defaultValue 30000
         */
        lock_ms: z.int().min(500).default(30_000),
        /** How long finished jobs and their results are kept. @defaultValue 86400 (a day) */
        ttl_s: z.int().min(1).default(86_400),
        /** Where uploaded JSON Lines files are spooled while a job is submitted. @defaultValue '.inferneo/spool' */
        spool_dir: z.string().min(1).default('.inferneo/spool'),
        /** Largest upload (multipart file or JSON body) of one job. @defaultValue 1073741824 (1 GiB) */
        max_upload_bytes: z.int().min(1024).default(1024 * 1024 * 1024),
        /** Most rows in one job. @defaultValue 1000000 */
        max_rows: z.int().min(1).default(1_000_000),
        /** Time the completion callback (POST to `callback_url`) has to answer, per try. @defaultValue 10000 */
        callback_timeout_ms: positiveMs.default(10_000),
      })
      .strict()
      .prefault({}),
    workers: z
      .object({
        /** ROUTER endpoint workers connect to; '' = a private ipc:// path. @defaultValue '' */
        bind: z.string().default(''),
        /** Local worker processes the orchestrator starts and supervises. @defaultValue 2 */
        spawn: z.int().min(0).max(64).default(2),
        /** Python interpreter for spawned workers. @defaultValue '.venv/bin/python' */
        python: z.string().min(1).default('.venv/bin/python'),
        /** Directory holding the inferneo_worker package. @defaultValue 'worker' */
        package_dir: z.string().min(1).default('worker'),
        /** Extra command-line arguments for spawned workers, e.g. ['--log-level', 'warning']. @defaultValue [] */
        extra_args: z.array(z.string()).default([]),
        /** Worker YAML config given to spawned workers. @defaultValue 'worker-config/worker.yaml' */
        config: z.string().default('worker-config/worker.yaml'),
        /** @defaultValue 1000 */
        heartbeat_interval_ms: positiveMs.default(1000),
        /** Silence after which a worker is declared dead. @defaultValue 5000 */
        heartbeat_timeout_ms: positiveMs.default(5000),
        /** Time a worker has to answer an inference call. @defaultValue 60000 */
        request_timeout_ms: positiveMs.default(60_000),
        /** Time a worker has to load a model version. @defaultValue 120000 */
        load_timeout_ms: positiveMs.default(120_000),
        /**
         * Workers that must be connected before start-up loads models: spawned ones, or remote ones
         * (e.g. the `worker` service of docker-compose). -1 = as many as `spawn`. @defaultValue -1
         */
        wait_for: z.int().min(-1).max(1024).default(-1),
        /** Time start-up waits for those workers to connect. @defaultValue 60000 */
        connect_timeout_ms: positiveMs.default(60_000),
      })
      .strict()
      .prefault({}),
    triton: z
      .object({
        /**
         * Triton servers sharing one model repository, in explicit model-control mode:
         * `http://host:8000` (protocol http) or `host:8001` (grpc). Empty = no Triton backend. @defaultValue []
         */
        endpoints: z.array(z.string().min(1)).default([]),
        /** Protocol spoken to Triton. @defaultValue 'http' */
        protocol: z.enum(['http', 'grpc']).default('http'),
        /**
         * Models served by Triton: registered with backend `triton` at start (from Triton's repository
         * when the orchestrator's does not hold them); '*' = every model in Triton's repository. @defaultValue []
         */
        models: z.array(z.string().min(1)).default([]),
        /** Time Triton has to answer one inference call. @defaultValue 60000 */
        request_timeout_ms: positiveMs.default(60_000),
        /** Time Triton has to load or unload a model. @defaultValue 120000 */
        load_timeout_ms: positiveMs.default(120_000),
        /** Further attempts of a call that failed with a connection error or UNAVAILABLE. @defaultValue 2 */
        retries: z.int().min(0).max(10).default(2),
        /** Delay before the first retry; it doubles with each further one (with jitter). @defaultValue 50 */
        retry_backoff_ms: positiveMs.default(50),
        /** Longest delay between two attempts. @defaultValue 1000 */
        retry_max_backoff_ms: positiveMs.default(1000),
        breaker: z
          .object({
            /** Consecutive failures of an endpoint that open its circuit (calls then fail fast with 503). @defaultValue 5 */
            failures: z.int().min(1).max(1000).default(5),
            /** How long an open circuit waits before a probe (ready + models loaded) may close it. @defaultValue 5000 */
            cooldown_ms: positiveMs.default(5000),
          })
          .strict()
          .prefault({}),
        /** HTTP connections kept open per endpoint. @defaultValue 32 */
        connections: z.int().min(1).max(1024).default(32),
        /**
         * Executions of a version kept in flight per Triton model instance and endpoint (Triton
         * queues by itself; more than one hides the round trip). @defaultValue 4
         */
        inflight_per_instance: z.int().min(1).max(256).default(4),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const address = c.triton.protocol === 'grpc' ? /^(grpc:\/\/)?[^\s/:]+:\d{1,5}$/ : /^https?:\/\/[^\s/]+\/?$/;
    c.triton.endpoints.forEach((endpoint, i) => {
      if (!address.test(endpoint)) {
        ctx.addIssue({
          code: 'custom',
          path: ['triton', 'endpoints', i],
          message: c.triton.protocol === 'grpc' ? 'expected host:port for protocol grpc' : 'expected http://host:port for protocol http',
        });
      }
    });
    if (c.triton.models.length > 0 && c.triton.endpoints.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['triton', 'models'], message: 'names models served by Triton, but triton.endpoints is empty' });
    }
    if (c.triton.retry_max_backoff_ms < c.triton.retry_backoff_ms) {
      ctx.addIssue({ code: 'custom', path: ['triton', 'retry_max_backoff_ms'], message: `must be at least triton.retry_backoff_ms (${c.triton.retry_backoff_ms})` });
    }
    if (c.workers.heartbeat_timeout_ms <= c.workers.heartbeat_interval_ms) {
      ctx.addIssue({
        code: 'custom',
        path: ['workers', 'heartbeat_timeout_ms'],
        message: `must be larger than workers.heartbeat_interval_ms (${c.workers.heartbeat_interval_ms})`,
      });
    }
  });

export type InferneoConfig = z.infer<typeof configSchema>;

type Coerce = 'int' | 'string' | 'list' | 'bool';

/** Environment variables and the keys they override. */
export const ENV_OVERRIDES: readonly { env: string; path: readonly string[]; type: Coerce }[] = [
  { env: 'INFERNEO_HTTP_HOST', path: ['http', 'host'], type: 'string' },
  { env: 'INFERNEO_HTTP_PORT', path: ['http', 'port'], type: 'int' },
  { env: 'INFERNEO_MAX_REQUEST_BYTES', path: ['http', 'max_request_bytes'], type: 'int' },
  { env: 'INFERNEO_GRPC_PORT', path: ['grpc', 'port'], type: 'int' },
  { env: 'INFERNEO_MODEL_REPOSITORY', path: ['model_repository'], type: 'string' },
  { env: 'INFERNEO_ADMIN_TOKEN', path: ['admin_token'], type: 'string' },
  { env: 'INFERNEO_ADMIN_TOKEN_FILE', path: ['admin_token_file'], type: 'string' },
  { env: 'REDIS_URL', path: ['redis_url'], type: 'string' },
  { env: 'INFERNEO_REDIS_PREFIX', path: ['redis_prefix'], type: 'string' },
  { env: 'INFERNEO_STARTUP_MODELS', path: ['models', 'startup'], type: 'list' },
  { env: 'INFERNEO_BATCHING', path: ['scheduling', 'batching'], type: 'bool' },
  { env: 'INFERNEO_JOB_WORKERS', path: ['jobs', 'workers'], type: 'bool' },
  { env: 'INFERNEO_JOB_CONCURRENCY', path: ['jobs', 'concurrency'], type: 'int' },
  { env: 'INFERNEO_JOB_RATE_LIMIT', path: ['jobs', 'rate_limit_chunks'], type: 'int' },
  { env: 'INFERNEO_JOB_TTL_S', path: ['jobs', 'ttl_s'], type: 'int' },
  { env: 'INFERNEO_JOB_SPOOL_DIR', path: ['jobs', 'spool_dir'], type: 'string' },
  { env: 'INFERNEO_JOB_MAX_UPLOAD_BYTES', path: ['jobs', 'max_upload_bytes'], type: 'int' },
  { env: 'INFERNEO_WORKER_BIND', path: ['workers', 'bind'], type: 'string' },
  { env: 'INFERNEO_WORKERS', path: ['workers', 'spawn'], type: 'int' },
  { env: 'INFERNEO_WAIT_FOR_WORKERS', path: ['workers', 'wait_for'], type: 'int' },
  { env: 'INFERNEO_PYTHON', path: ['workers', 'python'], type: 'string' },
  { env: 'INFERNEO_WORKER_CONFIG', path: ['workers', 'config'], type: 'string' },
  { env: 'INFERNEO_TRITON_URLS', path: ['triton', 'endpoints'], type: 'list' },
  { env: 'INFERNEO_TRITON_PROTOCOL', path: ['triton', 'protocol'], type: 'string' },
  { env: 'INFERNEO_TRITON_MODELS', path: ['triton', 'models'], type: 'list' },
];

export const DEFAULT_CONFIG_FILE = 'worker-config/inferneo.yaml';

export interface LoadConfigOptions {
  /** YAML file; undefined = `INFERNEO_CONFIG`, else DEFAULT_CONFIG_FILE when it exists, else none. */
  file?: string;
  /** @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
}

function coerce(raw: string, type: Coerce): unknown {
  if (type === 'list') return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (type === 'int') return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  if (type === 'bool') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  return raw;
}

function valueAt(object: unknown, path: readonly PropertyKey[]): unknown {
  let cur = object;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Reads, overrides and validates the configuration. Throws ConfigError naming the key and bad value. */
export function loadConfig(options: LoadConfigOptions = {}): InferneoConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env['INFERNEO_CONFIG'] ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  let raw: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    try {
      const parsed: unknown = parseYaml(text);
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a YAML mapping`);
        raw = parsed as Record<string, unknown>;
      }
    } catch (err) {
      if (err instanceof YAMLParseError) throw new ConfigError(`config file ${file} is not valid YAML: ${err.message}`);
      throw err;
    }
  }

  const sources = new Map<string, string>();
  for (const { env: name, path, type } of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let cur = raw;
    for (const key of path.slice(0, -1)) {
      if (typeof cur[key] !== 'object' || cur[key] === null) cur[key] = {};
      cur = cur[key] as Record<string, unknown>;
    }
    cur[path[path.length - 1]!] = coerce(value, type);
    sources.set(path.join('.'), name);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') {
        const where = key === '' ? '' : ` in '${key}'`;
        return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}${where}`;
      }
      const from = sources.get(key) ?? (file !== undefined ? file : 'defaults');
      return `${key} = ${JSON.stringify(valueAt(raw, issue.path))} (from ${from}): ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  return result.data;
}
