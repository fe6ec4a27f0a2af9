import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { resolveAdminToken } from './admin/admin-token.js';
import { createAdminApp } from './admin/admin-api.js';
import { BackendSet } from './backends/backend-set.js';
import { PythonBackend } from './backends/python/python-backend.js';
import { WorkerPool } from './backends/python/worker-pool.js';
import { WorkerSupervisor } from './backends/python/worker-supervisor.js';
import { TritonBackend } from './backends/triton/triton-backend.js';
import { type InferneoConfig, loadConfig } from './config/index.js';
import { ConfigError } from './errors.js';
import { type BatchJobs, startBatchJobs } from './jobs/batch-jobs.js';
import { LlmMetrics } from './llm/llm-metrics.js';
import { LlmService } from './llm/llm-service.js';
import { TritonGenerate } from './llm/triton-generate.js';
import { createMetricsRegistry } from './metrics/metrics.js';
import { registerTritonMetrics } from './backends/triton/triton-metrics.js';
import { ModelRegistry } from './registry/model-registry.js';
import { RegistryStore } from './registry/registry-store.js';
import { CanaryController } from './routing/canary-controller.js';
import { InferenceStats } from './scheduling/inference-stats.js';
import { Scheduler } from './scheduling/scheduler.js';
import { RouteStats } from './routing/route-stats.js';
import { Router } from './routing/router.js';
import { GrpcServer } from './server/grpc-server.js';
import { HttpServer } from './server/http-server.js';
import { InferenceService } from './server/inference-service.js';
import { withGenerate } from './server/generate-api.js';
import { createOpenAiRouter } from './server/openai-api.js';
import { createV2Router } from './server/v2-api.js';

/**
 * Wires the orchestrator together and owns the order of start and stop: Redis and the registry,
 * the worker socket, the supervised workers, the models, then the HTTP listener (data plane and
 * admin API); and the reverse on close.
 */

export const ServerState = {
  STARTING: 'starting',
  RUNNING: 'running',
  CLOSING: 'closing',
  CLOSED: 'closed',
} as const;
export type ServerState = (typeof ServerState)[keyof typeof ServerState];

export interface InferneoServer {
  readonly config: InferneoConfig;
  /** The port the HTTP API really listens on (useful with `http.port: 0`). */
  readonly httpPort: number;
  /** The port the gRPC API (Triton's GRPCInferenceService) really listens on (useful with `grpc.port: 0`). */
  readonly grpcPort: number;
  /** The ROUTER endpoint workers connect to. */
  readonly workerEndpoint: string;
  readonly registry: ModelRegistry;
  readonly router: Router;
  readonly store: RegistryStore;
  readonly backend: PythonBackend;
  /** The Triton backend, when `triton.endpoints` names any server. */
  readonly triton: TritonBackend | undefined;
  /** What the registry and the scheduler use: each version goes to its backend (python or triton). */
  readonly backends: BackendSet;
  readonly scheduler: Scheduler;
  /** Text generation (OpenAI /v1, Triton generate) on decoupled models. */
  readonly llm: LlmService;
  readonly canary: CanaryController;
  /** The admin API's bearer token, and the file it was written to when generated. */
  readonly adminToken: { token: string; file?: string };
  readonly pool: WorkerPool;
  readonly supervisor: WorkerSupervisor | undefined;
  /** Batch jobs: the queue (submit, read, cancel) and, with `jobs.workers`, the BullMQ workers. */
  readonly jobs: BatchJobs;
  state(): ServerState;
  /** Stops everything this server started. Idempotent. */
  close(): Promise<void>;
}

function log(message: string): void {
  console.error(`[inferneo] ${message}`);
}

async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5_000 });
  redis.on('error', () => undefined); // reported through `status` and failed commands instead
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${url}: ${(err as Error).message}. Set REDIS_URL or start redis-server.`, { cause: err });
  }
  return redis;
}

/** The models `triton.models` names ('*': every model in Triton's repository, asked now). */
async function tritonModelNames(config: InferneoConfig, triton: TritonBackend | undefined): Promise<Set<string>> {
  const names = new Set(config.triton.models.filter((m) => m !== '*'));
  if (triton !== undefined && config.triton.models.includes('*')) {
    try {
      for (const name of await triton.repositoryModels()) names.add(name);
    } catch (err) {
      log(`triton.models is '*' but Triton's repository index could not be read: ${(err as Error).message}`);
    }
  }
  return names;
}

function waitForWorkers(pool: WorkerPool, count: number, timeoutMs: number): Promise<void> {
  if (pool.sessions().length >= count) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pool.off('worker-connected', check);
      reject(new Error(`only ${pool.sessions().length} of ${count} workers connected within ${timeoutMs} ms; see the worker logs above`));
    }, timeoutMs);
    const check = (): void => {
      if (pool.sessions().length < count) return;
      clearTimeout(timer);
      pool.off('worker-connected', check);
      resolve();
    };
    pool.on('worker-connected', check);
  });
}

export async function startInferneo(config: InferneoConfig): Promise<InferneoServer> {
  let state: ServerState = ServerState.STARTING;
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async (): Promise<void> => {
    if (state === ServerState.CLOSING || state === ServerState.CLOSED) return;
    state = ServerState.CLOSING;
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        log(`error while stopping: ${(err as Error).message}`);
      }
    }
    state = ServerState.CLOSED;
  };

  try {
    const redis = await connectRedis(config.redis_url);
    cleanups.push(() => void redis.disconnect());

    const store = new RegistryStore(redis, { prefix: config.redis_prefix });
    await store.start();
    cleanups.push(() => store.close());

    const pool = new WorkerPool({
      bind: config.workers.bind,
      heartbeatIntervalMs: config.workers.heartbeat_interval_ms,
      heartbeatTimeoutMs: config.workers.heartbeat_timeout_ms,
    });
    await pool.start();
    cleanups.push(() => pool.close());
    const backend = new PythonBackend(pool, {
      requestTimeoutMs: config.workers.request_timeout_ms,
      loadTimeoutMs: config.workers.load_timeout_ms,
    });
    cleanups.push(() => backend.close());
    backend.setPinnedCheck((model, version) => store.version(model, version)?.pinned === true);
    let triton: TritonBackend | undefined;
    if (config.triton.endpoints.length > 0) {
      const t = config.triton;
      triton = new TritonBackend(
        {
          endpoints: t.endpoints,
          protocol: t.protocol,
          requestTimeoutMs: t.request_timeout_ms,
          loadTimeoutMs: t.load_timeout_ms,
          retry: { retries: t.retries, backoffMs: t.retry_backoff_ms, maxBackoffMs: t.retry_max_backoff_ms },
          breaker: { failures: t.breaker.failures, cooldownMs: t.breaker.cooldown_ms },
          connections: t.connections,
          inflightPerInstance: t.inflight_per_instance,
        },
        { log },
      );
      cleanups.push(() => triton!.close());
    }
    // Each version goes to the backend its registry record names.
    const backends = new BackendSet(
      { python: backend, triton },
      (model, version) => store.version(model, version)?.backend ?? store.model(model)?.backend ?? 'python',
    );
    const tritonModels = await tritonModelNames(config, triton);

    const registry = new ModelRegistry({
      repository: config.model_repository,
      backend: backends,
      backendFor: (name) => (tritonModels.has(name) ? 'triton' : 'python'),
      store,
      lazyLoadTimeoutMs: config.models.lazy_load_timeout_ms,
      drainTimeoutMs: config.models.drain_timeout_ms,
      log,
    });
    backend.on('evicted', (model, version, reason, everywhere) => {
      if (everywhere) void registry.noteEvicted(model, version, reason);
    });
    const metrics = createMetricsRegistry();
    if (triton !== undefined) registerTritonMetrics(metrics, () => triton!.endpointStates());
    const router = new Router(registry, store, new RouteStats(metrics));
    const stats = new InferenceStats(metrics);
    const scheduler = new Scheduler(backends, { stats, batching: config.scheduling.batching });
    cleanups.push(() => scheduler.close());
    const canary = new CanaryController(router, store, redis, { prefix: config.redis_prefix, log });
    canary.start();
    cleanups.push(() => canary.close());
    await registry.syncRepository();
    // Triton-hosted models the orchestrator's repository does not hold: Triton describes them.
    for (const name of tritonModels) {
      if (store.model(name) !== undefined) continue;
      await registry.registerModel({ name, backend: 'triton' }).catch((err: Error) => log(`could not register Triton model ${name}: ${err.message}`));
    }

    let supervisor: WorkerSupervisor | undefined;
    if (config.workers.spawn > 0) {
      supervisor = new WorkerSupervisor(pool, {
        count: config.workers.spawn,
        python: config.workers.python,
        packageDir: config.workers.package_dir,
        ...(config.workers.config !== '' ? { configFile: config.workers.config } : {}),
        modelRepository: config.model_repository,
        extraArgs: config.workers.extra_args,
      });
      supervisor.start();
      cleanups.push(() => supervisor!.close());
    }
    const waitFor = config.workers.wait_for === -1 ? config.workers.spawn : config.workers.wait_for;
    if (waitFor > 0) await waitForWorkers(pool, waitFor, config.workers.connect_timeout_ms);

    // What was ready before a restart (or is ready in another orchestrator) is loaded here too.
    await registry.reconcile();
    const startup = config.models.startup.includes('*') ? registry.models().map((m) => m.name) : config.models.startup;
    for (const name of startup) {
      if (!registry.models().some((m) => m.name === name)) {
        throw new ConfigError(`models.startup names '${name}', which is not a registered model nor in the model repository ${config.model_repository}`);
      }
    }
    const failed: string[] = [];
    await Promise.all(
      startup.map((name) =>
        registry.loadModel(name).catch((err: Error) => {
          failed.push(name);
          log(`could not load start-up model ${name}: ${err.message}`);
        }),
      ),
    );

    // Before the listeners, so that they close first and running chunks still find a scheduler.
    const jobs = await startBatchJobs(config, { registry, router, scheduler, metrics, log });
    cleanups.push(() => jobs.close());

    const adminToken = await resolveAdminToken(config.admin_token, config.admin_token_file);
    if (adminToken.source === 'generated') log(`admin API token generated and written to ${adminToken.file} (set INFERNEO_ADMIN_TOKEN to choose one)`);
    else if (adminToken.source === 'file') log(`admin API token read from ${adminToken.file}`);
    const adminApp = createAdminApp({
      registry,
      router,
      store,
      token: adminToken.token,
      metrics,
      jobs: { queue: jobs.queue, spool: jobs.spool, maxInlineBytes: config.http.max_request_bytes },
    });

    // One data plane, two transports: HTTP and gRPC requests route, batch and count alike.
    const inference = new InferenceService({
      registry,
      router,
      scheduler,
      stats,
      isReady: () =>
        state === ServerState.RUNNING &&
        redis.status === 'ready' &&
        failed.length === 0 &&
        startup.every((name) => registry.isReady(name)),
    });
    // LLMs: OpenAI's /v1 and Triton's generate extension, over the same registry and routes.
    // Triton-hosted LLMs: generate requests pass through to Triton's own endpoint; /v1 translates.
    const tritonGenerate =
      triton === undefined
        ? undefined
        : new TritonGenerate({
            endpoints: () => triton.endpointStates(),
            protocol: triton.options.protocol,
            inputsOf: (model) => store.model(model)?.config.input.map((t) => t.name) ?? [],
            timeoutMs: config.workers.request_timeout_ms,
          });
    const llm = new LlmService({
      registry,
      router,
      metrics: new LlmMetrics(metrics),
      generators: { python: backend, triton: tritonGenerate },
      passThrough: { triton: tritonGenerate },
    });
    const v2 = withGenerate(createV2Router({ service: inference, maxRequestBytes: config.http.max_request_bytes }), { llm, maxRequestBytes: config.http.max_request_bytes });
    const openAi = createOpenAiRouter({ llm, maxRequestBytes: config.http.max_request_bytes, onInternalError: (err, req) => log(`internal error on ${req.method} ${req.url}: ${err.stack ?? err.message}`) });
    const http = new HttpServer({
      host: config.http.host,
      port: config.http.port,
      fallback: adminApp,
      dataPlane: ['v2', 'v1'],
      router: (method, segments) => (segments[0] === 'v1' ? openAi(method, segments) : v2(method, segments)),
      onInternalError: (err, req) => log(`internal error on ${req.method} ${req.url}: ${err.stack ?? err.message}`),
    });
    const httpPort = await http.listen();
    cleanups.push(() => http.close());
    const grpcServer = new GrpcServer({
      host: config.http.host,
      port: config.grpc.port,
      service: inference,
      llm,
      maxMessageBytes: config.http.max_request_bytes,
      onInternalError: (err, method) => log(`internal error in gRPC ${method}: ${err.stack ?? err.message}`),
    });
    cleanups.push(() => grpcServer.close());
    const grpcPort = await grpcServer.listen();
    state = ServerState.RUNNING;

    return {
      config,
      httpPort,
      grpcPort,
      workerEndpoint: pool.endpoint,
      registry,
      router,
      store,
      backend,
      triton,
      backends,
      scheduler,
      llm,
      canary,
      adminToken: adminToken.file !== undefined ? { token: adminToken.token, file: adminToken.file } : { token: adminToken.token },
      pool,
      supervisor,
      jobs,
      state: () => state,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function parseArgs(argv: string[]): { config?: string } {
  const out: { config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') out.config = argv[++i];
    else if (arg.startsWith('--config=')) out.config = arg.slice('--config='.length);
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: inferneo [--config FILE]   (see worker-config/inferneo.yaml; env overrides in README)');
      process.exit(0);
    } else throw new ConfigError(`unknown argument '${arg}'`);
  }
  return out;
}

async function main(): Promise<void> {
  let server: InferneoServer;
  try {
    const args = parseArgs(process.argv.slice(2));
    const config = loadConfig(args.config !== undefined ? { file: args.config } : {});
    server = await startInferneo(config);
  } catch (err) {
    console.error(`inferneo: ${(err as Error).message}`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  const host = server.config.http.host === '0.0.0.0' ? '127.0.0.1' : server.config.http.host;
  console.log(`Inferneo is running.`);
  console.log(`  KServe v2 / Triton HTTP  http://${host}:${server.httpPort}/v2`);
  console.log(`  KServe v2 / Triton gRPC  ${host}:${server.grpcPort}  (inference.GRPCInferenceService)`);
  console.log(`  health                   http://${host}:${server.httpPort}/v2/health/ready`);
  console.log(`  admin API                http://${host}:${server.httpPort}/admin  (bearer token${server.adminToken.file !== undefined ? ` in ${server.adminToken.file}` : ': INFERNEO_ADMIN_TOKEN'})`);
  console.log(`  OpenAPI / metrics        http://${host}:${server.httpPort}/openapi.json  http://${host}:${server.httpPort}/metrics`);
  console.log(`  workers connect to       ${server.workerEndpoint}`);
  console.log(`  model repository         ${path.resolve(server.config.model_repository)}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received, stopping`);
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
