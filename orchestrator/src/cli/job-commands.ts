import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { InferneoError, InvalidArgumentError } from '../errors.js';
import type { AdminClient, JobSettingsInput, JobView } from './admin-client.js';
import { formatTable } from './format.js';

/**
 * `inferneo jobs …` (submit with a live progress bar, list, status, cancel, results) and
 * `inferneo jobs-worker`. Progress goes to stderr, so that stdout carries only the answer (the id,
 * the results) and stays usable in pipes.
 */

/** The `action` wrapper of runCli: connects, calls, prints the answer as JSON or for people. */
export type Action = <A extends unknown[], T>(
  call: (client: AdminClient, command: Command, ...args: A) => Promise<T>,
  human: (answer: T) => string,
) => (...params: unknown[]) => Promise<void>;

export interface JobCommandsContext {
  action: Action;
  /** A client for the command's global options (--url, --token, --actor). */
  connect: (command: Command) => Promise<AdminClient>;
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Draw the bar in place (`\r`); otherwise a line at most every `plainEveryMs`. @defaultValue process.stderr.isTTY */
  tty?: boolean;
  /** How often `jobs submit` asks for progress. @defaultValue 500 */
  pollMs?: number;
  /** @defaultValue 2000 */
  plainEveryMs?: number;
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);

function duration(seconds: number | null): string {
  if (seconds === null) return '-';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** `[########............] 40%  400/1000 rows  3 failed  1234 rows/s  ETA 0:01  running` */
export function formatProgressBar(job: JobView, width = 24): string {
  const { done, failed, total } = job.progress;
  const share = total > 0 ? (done + failed) / total : 0;
  const filled = Math.round(share * width);
  const rate = job.rate_rows_per_s === null ? '-' : String(Math.round(job.rate_rows_per_s));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(share * 100)}%  ${done + failed}/${total} rows  ${failed} failed  ${rate} rows/s  ETA ${duration(job.eta_s)}  ${job.state}`;
}

export function formatJob(job: JobView): string {
  const lines: [string, string][] = [
    ['job', job.id],
    ['state', job.state],
    ['model', job.version !== undefined ? `${job.model} v${job.version}` : job.model],
    ['rows', `${job.progress.done} done, ${job.progress.failed} failed, ${job.progress.total} total`],
    ['chunks', `${job.chunks} of ${job.chunk_size} rows, priority ${job.priority}`],
    ['rate', job.rate_rows_per_s === null ? '-' : `${job.rate_rows_per_s} rows/s, ETA ${duration(job.eta_s)}`],
    ['created', job.created_at],
  ];
  if (job.started_at !== undefined) lines.push(['started', job.started_at]);
  if (job.finished_at !== undefined) lines.push(['finished', job.finished_at]);
  if (job.error !== undefined) lines.push(['error', job.error]);
  if (job.callback_url !== undefined) lines.push(['callback', `${job.callback_url}${job.callback !== undefined ? ` (${job.callback})` : ''}`]);
  return lines.map(([k, v]) => `${k.padEnd(9)}${v}`).join('\n');
}

export function formatJobs(jobs: JobView[]): string {
  return formatTable(
    ['ID', 'STATE', 'MODEL', 'DONE', 'FAILED', 'TOTAL', 'CREATED'],
    jobs.map((j) => [j.id, j.state, j.version !== undefined ? `${j.model}:${j.version}` : j.model, String(j.progress.done), String(j.progress.failed), String(j.progress.total), j.created_at]),
  );
}

function positiveInt(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${flag} '${value}' is not a positive integer`);
    return Number(value);
  };
}

export function addJobCommands(program: Command, ctx: JobCommandsContext): void {
  const { action, stderr } = ctx;
  const tty = ctx.tty ?? process.stderr.isTTY === true;
  const pollMs = ctx.pollMs ?? 500;
  const plainEveryMs = ctx.plainEveryMs ?? 2000;

  /** Polls the job until it finishes, drawing the bar; resolves with the final view. */
  const follow = async (client: AdminClient, first: JobView): Promise<JobView> => {
    let job = first;
    let lastPlain = 0;
    let lastLine = '';
    for (;;) {
      const line = formatProgressBar(job);
      if (tty) stderr(`\r${line}\x1b[K`);
      else if (line !== lastLine && (Date.now() - lastPlain >= plainEveryMs || FINAL.has(job.state))) {
        stderr(`${line}\n`);
        lastPlain = Date.now();
      }
      lastLine = line;
      if (FINAL.has(job.state)) break;
      await new Promise((r) => setTimeout(r, pollMs));
      job = await client.getJob(job.id);
    }
    if (tty) stderr('\n');
    return job;
  };

  const jobs = program.command('jobs').description('batch jobs: offline inference over a file of rows, through the same routes and batcher');
  jobs
    .command('submit')
    .description('submit a JSON Lines file (one {"inputs": [...]} per line), print the job id and follow its progress')
    .argument('<file>', 'the rows, JSON Lines')
    .option('--route <route>', 'the route (or model) the rows go to')
    .option('--model <model>', 'a model, instead of a route')
    .option('--version <version>', 'a version of --model (bypasses routes)')
    .option('--chunk-size <rows>', 'rows per chunk (default 256)', positiveInt('--chunk-size'))
    .option('--priority <n>', 'job priority, 1 (first) to 100 (default 5)', positiveInt('--priority'))
    .option('--callback-url <url>', 'POSTed a summary when the job finishes')
    .option('--detach', 'print the id and return at once')
    .addHelpText('after', '\nExamples:\n  inferneo jobs submit rows.jsonl --route fraud\n  inferneo jobs submit rows.jsonl --model classifier --version 2 --chunk-size 1000 --detach')
    .action(
      action(
        async (c, cmd, file: string) => {
          const o = cmd.opts<{ route?: string; model?: string; version?: string; chunkSize?: number; priority?: number; callbackUrl?: string; detach?: boolean }>();
          const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
          if ((o.route === undefined) === (o.model === undefined)) throw new InvalidArgumentError('give the target as --route ROUTE or as --model MODEL [--version V]');
          if (o.version !== undefined && o.model === undefined) throw new InvalidArgumentError('--version goes with --model, not --route');
          const settings: JobSettingsInput = { model: (o.route ?? o.model)! };
          if (o.version !== undefined) settings.version = o.version;
          if (o.chunkSize !== undefined) settings.chunk_size = o.chunkSize;
          if (o.priority !== undefined) settings.priority = o.priority;
          if (o.callbackUrl !== undefined) settings.callback_url = o.callbackUrl;
          const submitted = await c.submitJobFile(path.resolve(ctx.cwd, file), settings);
          if (!json) ctx.stdout(`${submitted.id}\n`);
          if (o.detach === true) return submitted;
          const job = await follow(c, submitted);
          if (job.state !== 'completed') {
            throw new InferneoError('INTERNAL', `job ${job.id} ${job.state}${job.error !== undefined ? `: ${job.error}` : ''} (${job.progress.done} rows done, ${job.progress.failed} failed of ${job.progress.total})`);
          }
          return job;
        },
        // --json prints the job; people get the id above and this summary.
        (job) =>
          FINAL.has(job.state)
            ? `job completed: ${job.progress.done} rows done, ${job.progress.failed} failed; results: inferneo jobs results ${job.id}`
            : `job ${job.state}: ${job.progress.total} rows; follow it with: inferneo jobs status ${job.id}`,
      ),
    );
  jobs
    .command('list')
    .description('jobs, newest first')
    .option('--limit <n>', 'how many (default 100)', positiveInt('--limit'))
    .action(action((c, cmd) => c.listJobs(cmd.opts<{ limit?: number }>().limit), formatJobs));
  jobs
    .command('status')
    .description("a job's state, progress, rate and ETA")
    .argument('<id>')
    .action(action((c, _cmd, id: string) => c.getJob(id), formatJob));
  jobs
    .command('cancel')
    .description('cancel a job: chunks not started are dropped, running ones finish')
    .argument('<id>')
    .action(action((c, _cmd, id: string) => c.cancelJob(id), (j) => `job ${j.id} ${j.state}: ${j.progress.done} rows done, ${j.progress.failed} failed of ${j.progress.total}`));
  jobs
    .command('results')
    .description("a job's results as JSON Lines, in row order (to stdout, or --output FILE)")
    .argument('<id>')
    .option('--output <file>', 'write them to a file')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      // Streamed as they arrive, rather than printed as one answer by `action`.
      const output = cmd.opts<{ output?: string }>().output;
      const c = await ctx.connect(cmd);
      if (output === undefined) {
        await c.jobResults(id, (chunk) => ctx.stdout(chunk));
        return;
      }
      const file = createWriteStream(path.resolve(ctx.cwd, output));
      try {
        await c.jobResults(id, (chunk) => (file.write(chunk) ? undefined : new Promise<void>((r) => file.once('drain', () => r()))));
      } finally {
        await new Promise<void>((r) => file.end(() => r()));
      }
    });

  program
    .command('jobs-worker')
    .description('run batch jobs: BullMQ workers with their own Python workers, no public API (Ctrl-C to stop)')
    .addOption(new Option('--config <file>', 'orchestrator YAML config (default: $INFERNEO_CONFIG, else worker-config/inferneo.yaml)'))
    .action(async (opts: { config?: string }) => {
      const { runJobsWorker } = await import('../jobs-worker.js');
      await runJobsWorker(opts.config !== undefined ? { configFile: path.resolve(ctx.cwd, opts.config) } : {});
    });
}
