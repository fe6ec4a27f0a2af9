/**
 * `npm run bench:jobs`: batch-job throughput beside online throughput, in one run against one
 * orchestrator process. (1) Online: single-sample binary requests over HTTP keep-alive at a given
 * concurrency with dynamic batching — the model's online batched throughput. (2) A batch job of
 * 100,000 rows (JSON Lines, uploaded with the CLI's streaming client) on the same model: submit
 * time, run time, rows/s. (3) Online traffic at lower concurrency, alone and then while a smaller
 * job runs: what the job costs online requests (their priority in the batcher). Peak memory of the
 * orchestrator, of the process running the chunks (the orchestrator, or with `--jobs-worker` an
 * `inferneo jobs-worker`) and of their Python workers. Writes bench/results/jobs.json and jobs.png.
 *
 *   npm run bench:jobs [-- --rows 100000 --chunk-size 256 --concurrency 64 --duration-ms 4000 --jobs-worker]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AdminClient, type JobView } from '../orchestrator/src/cli/admin-client.js';
import { arg, childPids, httpInferCaller, machine, MODELS, peakRssMb, ROOT, startOrchestrator, writeResults } from './harness.js';
import { closedLoop, summarize } from './stats.js';

const spec = MODELS[arg('model', 'mlp_tiny')]!;
const rows = Number(arg('rows', '100000'));
const interferenceRows = Number(arg('interference-rows', '30000'));
const chunkSize = Number(arg('chunk-size', '256'));
const concurrency = Number(arg('concurrency', '64'));
const interferenceConcurrency = Number(arg('interference-concurrency', '8'));
const durationMs = Number(arg('duration-ms', '4000'));
const workers = arg('workers', '1');
const separate = process.argv.includes('--jobs-worker');
const TOKEN = 'bench-admin-token';

/** Writes `n` rows of the model's input as JSON Lines (values with two decimals, ~5 bytes each). */
async function writeRows(file: string, n: number): Promise<number> {
  const out = createWriteStream(file);
  const width = spec.dims.reduce((a, b) => a * b, 1);
  for (let r = 0; r < n; r++) {
    const data = Array.from({ length: width }, (_, k) => Math.round(Math.sin(r * 7 + k) * 100) / 100);
    const line = `${JSON.stringify({ inputs: [{ name: spec.input, datatype: 'FP32', shape: [1, ...spec.dims], data }] })}\n`;
    if (!out.write(line)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve) => out.end(() => resolve()));
  return (await stat(file)).size;
}

/** Follows a job until it finishes, logging its progress; returns the finished job. */
async function follow(client: AdminClient, id: string): Promise<JobView> {
  let last = '';
  for (;;) {
    const job = await client.getJob(id);
    const line = `${job.state} ${job.progress.done + job.progress.failed}/${job.progress.total} rows, ${job.rate_rows_per_s ?? '-'} rows/s`;
    if (line !== last) console.error(`[bench] job ${line}`);
    last = line;
    if (job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled') return job;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What one job measured. */
interface JobFigures {
  rows: number;
  file_mb: number;
  failed_rows: number;
  submit_s: number;
  run_s: number;
  rows_per_s: number;
  end_to_end_rows_per_s: number;
}

/** Submits the file as a job and waits for it; `onQueued` is called once it is queued (ingested). */
async function runJob(client: AdminClient, file: string, n: number, onQueued: () => void = () => undefined): Promise<JobFigures> {
  const fileMb = Math.round(((await stat(file)).size / 2 ** 20) * 10) / 10;
  const t0 = Date.now();
  const submitted = await client.submitJobFile(file, { model: spec.name, version: '1', chunk_size: chunkSize });
  const submitS = (Date.now() - t0) / 1000;
  console.error(`[bench] job ${submitted.id}: ${n} rows (${fileMb} MiB) submitted in ${submitS.toFixed(1)} s`);
  onQueued();
  const job = await follow(client, submitted.id);
  if (job.state !== 'completed') throw new Error(`the job ended ${job.state}: ${job.error ?? ''}`);
  const runS = (Date.parse(job.finished_at!) - Date.parse(job.started_at!)) / 1000;
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    rows: n,
    file_mb: fileMb,
    failed_rows: job.progress.failed,
    submit_s: round(submitS),
    run_s: round(runS),
    rows_per_s: Math.round(n / runS),
    end_to_end_rows_per_s: Math.round(n / ((Date.parse(job.finished_at!) - t0) / 1000)),
  };
}

async function startJobsWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'inferneo.mjs'), 'jobs-worker'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 120_000;
  while (!out.includes('jobs worker is running')) {
    if (child.exitCode !== null) throw new Error(`the jobs worker exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('the jobs worker did not start in 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return child;
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(tmpdir(), 'inferneo-bench-jobs-'));
  const prefix = `inferneo-bench-jobs-${process.pid}:`;
  const env = { INFERNEO_WORKERS: workers, INFERNEO_STARTUP_MODELS: spec.name, INFERNEO_ADMIN_TOKEN: TOKEN, INFERNEO_REDIS_PREFIX: prefix, INFERNEO_JOB_SPOOL_DIR: path.join(tmp, 'spool') };
  const orchestrator = await startOrchestrator({ ...env, INFERNEO_JOB_WORKERS: String(!separate) });
  let jobsWorker: ChildProcess | undefined;
  try {
    if (separate) jobsWorker = await startJobsWorker(env);
    const client = new AdminClient({ url: `http://127.0.0.1:${orchestrator.port}`, token: TOKEN });
    const bigFile = path.join(tmp, 'rows.jsonl');
    const smallFile = path.join(tmp, 'interference.jsonl');
    console.error(`[bench] writing ${rows} + ${interferenceRows} rows of ${spec.name}`);
    await writeRows(bigFile, rows);
    await writeRows(smallFile, interferenceRows);

    console.error(`[bench] online: ${concurrency} clients, single samples, batching on`);
    const caller = httpInferCaller(orchestrator.port, spec, concurrency);
    const online = await closedLoop(caller.call, concurrency, durationMs);
    caller.close();

    console.error(`[bench] batch job: ${rows} rows`);
    const job = await runJob(client, bigFile, rows);

    console.error(`[bench] online at ${interferenceConcurrency} clients, alone and during a ${interferenceRows}-row job`);
    const small = httpInferCaller(orchestrator.port, spec, interferenceConcurrency);
    const alone = await closedLoop(small.call, interferenceConcurrency, durationMs);
    // Online callers run from the moment the job is queued until it has finished.
    let running = true;
    const latencies: number[] = [];
    let errors = 0;
    let loop: Promise<unknown> = Promise.resolve();
    let loopStart = 0n;
    const jobDuring = await runJob(client, smallFile, interferenceRows, () => {
      loopStart = process.hrtime.bigint();
      loop = Promise.all(
        Array.from({ length: interferenceConcurrency }, async () => {
          while (running) {
            const t0 = process.hrtime.bigint();
            try {
              await small.call();
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            } catch {
              errors++;
            }
          }
        }),
      );
    });
    running = false;
    await loop;
    const during = { online: summarize(latencies, errors, Number(process.hrtime.bigint() - loopStart) / 1e9), job: jobDuring };
    small.close();

    const memory = {
      orchestrator_peak_rss_mb: peakRssMb(orchestrator.child.pid!),
      orchestrator_python_workers_peak_rss_mb: Math.max(...childPids(orchestrator.child.pid!).map(peakRssMb)),
      chunk_runner: separate ? 'jobs-worker' : 'orchestrator',
      ...(jobsWorker !== undefined
        ? { jobs_worker_peak_rss_mb: peakRssMb(jobsWorker.pid!), jobs_worker_python_workers_peak_rss_mb: Math.max(...childPids(jobsWorker.pid!).map(peakRssMb)) }
        : {}),
    };
    writeResults(
      'jobs',
      {
        title: `Batch jobs: ${rows.toLocaleString('en')}-row job on ${spec.name} beside online batched throughput (${workers} worker(s), chunks run in the ${memory.chunk_runner})`,
        date: new Date().toISOString(),
        machine: machine(),
        model: spec.name,
        chunk_size: chunkSize,
        workers: Number(workers),
        online: { concurrency, ...online },
        job,
        interference: {
          concurrency: interferenceConcurrency,
          online_alone: alone,
          online_during_job: during.online,
          job_during: during.job,
        },
        memory,
        checks: {
          job_rows_per_s_vs_online_rps: Math.round((job.rows_per_s / online.throughput_rps) * 100) / 100,
          online_p99_ms_alone_vs_during_job: [alone.p99_ms, during.online.p99_ms],
          online_rps_during_job_share: Math.round((during.online.throughput_rps / alone.throughput_rps) * 100) / 100,
        },
      },
      'jobs',
    );
  } finally {
    if (jobsWorker !== undefined && jobsWorker.exitCode === null) {
      jobsWorker.kill('SIGTERM');
      await new Promise((r) => jobsWorker!.once('exit', r));
    }
    await orchestrator.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`);
  process.exit(1);
});
