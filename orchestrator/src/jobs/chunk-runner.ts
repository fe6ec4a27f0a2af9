import { ErrorCode, InferneoError, toInferneoError } from '../errors.js';
import { validateInferRequest } from '../registry/input-validation.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { Router } from '../routing/router.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import type { JobStore, ResultEntry } from './job-store.js';
import { decodeRows, errorLine, type JobRow, outputLine } from './row-codec.js';

/**
 * Runs one chunk of a job: each row goes through the same router (routes, A/B splits), registry
 * lease and dynamic batcher as an online request, as background work that online requests
 * overtake. Results are recorded as they come (see JobStore: exactly once per row), so a chunk
 * that runs again — a retry, or after its worker crashed — only runs the rows still missing.
 *
 * A row whose input is bad, or that the model fails on, gets its own error line. A row that fails
 * for a passing reason (no worker, queue full, timeout, the registry's Redis away) is left without
 * a result and the chunk throws TransientChunkError so that BullMQ retries it with backoff; on the
 * last attempt such rows get error lines too, so that every row ends with exactly one line.
 */

export interface ChunkData {
  job: string;
  chunk: number;
}

export interface ChunkRunnerOptions {
  store: JobStore;
  registry: ModelRegistry;
  router: Router;
  scheduler: Scheduler;
  /** Rows of the chunk queued in the batcher at once. @defaultValue 256 */
  rowsInFlight?: number;
  /** Result lines written to Redis per call. @defaultValue 64 */
  flushRows?: number;
  /** Told of the rows each write recorded (also those of runs that end up throwing). */
  onRecorded?: (done: number, failed: number) => void;
}

export interface ChunkOutcome {
  /** Why the chunk did nothing: the job was cancelled, has finished, or no longer exists. */
  skipped?: 'cancelled' | 'finished' | 'gone';
  /** Rows this run computed (rows finished by an earlier run are not counted). */
  rows: number;
  done: number;
  failed: number;
}

/** Rows left without a result for passing reasons; the chunk is worth another attempt. */
export class TransientChunkError extends InferneoError {
  constructor(
    readonly rows: number,
    cause: string,
  ) {
    super(ErrorCode.UNAVAILABLE, `${rows} row(s) of the chunk failed for a passing reason and will be retried; the last: ${cause}`);
  }
}

const TRANSIENT: ReadonlySet<string> = new Set([ErrorCode.UNAVAILABLE, ErrorCode.RESOURCE_EXHAUSTED, ErrorCode.DEADLINE_EXCEEDED, ErrorCode.MODEL_NOT_READY, ErrorCode.CANCELLED]);

/** Errors that say nothing about the row: a full queue, a lost worker, or a failure outside Inferneo's own errors (Redis). */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof InferneoError)) return true;
  return TRANSIENT.has(err.code);
}

const NO_HEADERS = (): undefined => undefined;

export class ChunkRunner {
  private readonly store: JobStore;
  private readonly registry: ModelRegistry;
  private readonly router: Router;
  private readonly scheduler: Scheduler;
  private readonly rowsInFlight: number;
  private readonly flushRows: number;
  private readonly onRecorded: ((done: number, failed: number) => void) | undefined;

  constructor(options: ChunkRunnerOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.router = options.router;
    this.scheduler = options.scheduler;
    this.rowsInFlight = options.rowsInFlight ?? 256;
    this.flushRows = options.flushRows ?? 64;
    this.onRecorded = options.onRecorded;
  }

  /** Runs the rows of a chunk that have no result yet. `lastAttempt`: no retry follows, so every row must get a line. */
  async run(data: ChunkData, lastAttempt: boolean): Promise<ChunkOutcome> {
    const { job, chunk } = data;
    const meta = await this.store.meta(job);
    if (meta === undefined) return { skipped: 'gone', rows: 0, done: 0, failed: 0 };
    if (meta.cancelled) return { skipped: 'cancelled', rows: 0, done: 0, failed: 0 };
    if (meta.state !== undefined) return { skipped: 'finished', rows: 0, done: 0, failed: 0 };
    if (!(await this.store.markStarted(job))) return { skipped: 'gone', rows: 0, done: 0, failed: 0 };

    const input = await this.store.input(job, chunk);
    if (input === null) {
      // Dropped after every row was recorded (a run that finished but was not acknowledged), or lost.
      const first = chunk * meta.chunk_size;
      const rows = Array.from({ length: Math.min(meta.chunk_size, meta.total - first) }, (_, i) => first + i);
      const finished = await this.store.finishedRows(job, rows);
      if (finished.size === rows.length) return { rows: 0, done: 0, failed: 0 };
      throw new InferneoError(ErrorCode.INTERNAL, `the input of chunk ${chunk} of job ${job} is missing from Redis; ${rows.length - finished.size} row(s) cannot run`);
    }
    const all = decodeRows(input);
    const finished = await this.store.finishedRows(job, all.map((r) => r.row));
    const rows = all.filter((r) => !finished.has(r.row));

    const outcome: ChunkOutcome = { rows: 0, done: 0, failed: 0 };
    let transient = 0;
    let lastTransient = '';
    let buffer: ResultEntry[] = [];
    let writing: Promise<void> = Promise.resolve();
    let writeError: unknown;
    const flush = (): void => {
      if (buffer.length === 0) return;
      const entries = buffer;
      buffer = [];
      writing = writing.then(async () => {
        if (writeError !== undefined) return;
        try {
          const recorded = await this.store.record(job, entries);
          if (!recorded.gone) {
            outcome.done += recorded.done;
            outcome.failed += recorded.failed;
            this.onRecorded?.(recorded.done, recorded.failed);
          }
        } catch (err) {
          writeError = err;
        }
      });
    };

    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < rows.length && writeError === undefined) {
        const row = rows[next++]!;
        let entry: ResultEntry;
        try {
          entry = await this.runRow(meta.model, meta.version, row);
        } catch (err) {
          if (!lastAttempt && isTransient(err)) {
            transient++;
            lastTransient = err instanceof Error ? err.message : String(err);
            continue;
          }
          const e = toInferneoError(err);
          entry = { row: row.row, ok: false, line: errorLine(row.row, e.message, e.code) };
        }
        outcome.rows++;
        buffer.push(entry);
        if (buffer.length >= this.flushRows) flush();
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.rowsInFlight, rows.length) }, lane));
    flush();
    await writing;
    if (writeError !== undefined) throw writeError;
    if (transient > 0) throw new TransientChunkError(transient, lastTransient);
    // Every row has its line: the input is no longer needed (a re-run finds the rows finished).
    await this.store.dropInput(job, chunk);
    return outcome;
  }

  private async runRow(name: string, version: string | undefined, row: JobRow): Promise<ResultEntry> {
    const target = this.router.resolve(name, version, NO_HEADERS);
    const config = this.registry.model(target.model).config;
    // Checked at submit against the main arm; an A/B arm of another model may differ.
    validateInferRequest(config, { inputs: row.inputs, outputs: row.outputs.map((o) => ({ name: o })), binaryOutputs: false, parameters: {} });
    const lease = await this.registry.acquire(target.model, target.version);
    try {
      const outputs = await this.scheduler.infer(target.model, target.version, config, { inputs: row.inputs, outputs: row.outputs }, { background: true });
      return { row: row.row, ok: true, line: outputLine(row.row, target.model, target.version, outputs) };
    } finally {
      lease.release();
    }
  }
}
