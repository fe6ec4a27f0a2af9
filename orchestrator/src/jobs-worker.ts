import { randomBytes } from 'node:crypto';
import { type InferneoConfig, loadConfig } from './config/index.js';
import { type InferneoServer, startInferneo } from './main.js';

/**
 * `inferneo jobs-worker`: a process that only runs batch jobs. It is an orchestrator built from the
 * same pieces (registry follower, its own supervised Python workers, scheduler, router) with the
 * BullMQ job workers on and nothing public: the HTTP and gRPC listeners bind to loopback on free
 * ports (the HTTP one answers /v2/health/ready, for supervisors), and the admin API gets a random
 * token that is never written anywhere. Start as many as you like, on any machine that reaches the
 * Redis; each takes chunks of every job.
 */

export interface JobsWorkerOptions {
  /** YAML config, as the orchestrator's `--config`. @defaultValue INFERNEO_CONFIG, else worker-config/inferneo.yaml */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  /** @defaultValue stdout */
  print?: (line: string) => void;
}

/** The orchestrator's configuration turned into a jobs worker's. */
export function jobsWorkerConfig(config: InferneoConfig): InferneoConfig {
  return {
    ...config,
    http: { ...config.http, host: '127.0.0.1', port: 0 },
    grpc: { ...config.grpc, port: 0 },
    admin_token: randomBytes(24).toString('base64url'),
    jobs: { ...config.jobs, workers: true },
  };
}

export async function startJobsWorker(options: JobsWorkerOptions = {}): Promise<InferneoServer> {
  const base = loadConfig({ ...(options.configFile !== undefined ? { file: options.configFile } : {}), ...(options.env !== undefined ? { env: options.env } : {}) });
  const server = await startInferneo(jobsWorkerConfig(base));
  const print = options.print ?? ((line: string) => console.log(line));
  const j = server.config.jobs;
  print('Inferneo jobs worker is running.');
  print(`  redis                    ${server.config.redis_url} (prefix ${server.config.redis_prefix})`);
  print(`  chunks at once           ${j.concurrency}${j.rate_limit_chunks > 0 ? `, at most ${j.rate_limit_chunks} per ${j.rate_limit_window_ms} ms across all workers` : ''}`);
  print(`  health                   http://127.0.0.1:${server.httpPort}/v2/health/ready`);
  print(`  workers connect to       ${server.workerEndpoint}`);
  return server;
}

/** Runs until SIGINT or SIGTERM, then stops taking chunks, lets the running ones finish and exits. */
export async function runJobsWorker(options: JobsWorkerOptions = {}): Promise<void> {
  const server = await startJobsWorker(options);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      console.error(`[inferneo] ${signal} received, finishing the running chunks and stopping`);
      void server.close().then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
