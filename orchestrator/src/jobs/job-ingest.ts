import { InvalidArgumentError, toInferneoError } from '../errors.js';
import { inferRequestFromJson } from '../protocol/infer-request.js';
import { validateInferRequest } from '../registry/input-validation.js';
import type { ModelConfig } from '../registry/model-config.js';
import type { InputSpool } from './input-spool.js';
import type { JobStore, ResultEntry } from './job-store.js';
import { encodeRows, errorLine, type JobRow } from './row-codec.js';

/**
 * Turns a spooled JSON Lines file into a job's stored input: each line is parsed as a KServe-v2
 * request and checked against the model's signature, valid rows are encoded and stored one chunk
 * at a time (memory stays at about one chunk), and each invalid row gets its error line at once.
 * A line that is not JSON at all means the file is not JSON Lines: the whole submit fails.
 */

export interface IngestOptions {
  id: string;
  /** The signature rows are checked against (for a route, its main arm's). */
  config: ModelConfig;
  chunkSize: number;
  maxRows: number;
  /** Expiry of what is written until the job is activated. */
  pendingTtlS: number;
}

export interface IngestResult {
  /** Rows in the file. */
  total: number;
  /** Chunk slots: ceil(total / chunkSize). */
  chunks: number;
  /** Chunks holding at least one valid row: these become BullMQ child jobs. */
  runnable: number[];
  /** Rows that failed validation (already recorded as error lines). */
  invalid: number;
  /** The first few invalid rows' messages, to explain a submit where no row is valid. */
  examples: string[];
}

export async function ingestRows(spool: InputSpool, file: string, store: JobStore, options: IngestOptions): Promise<IngestResult> {
  const { id, config, chunkSize, maxRows, pendingTtlS } = options;
  let row = 0;
  let chunk: JobRow[] = [];
  let errors: ResultEntry[] = [];
  const runnable: number[] = [];
  const examples: string[] = [];
  let invalid = 0;

  const flushChunk = async (): Promise<void> => {
    const number = Math.floor((row - 1) / chunkSize);
    if (chunk.length > 0) {
      await store.setInput(id, number, encodeRows(chunk), pendingTtlS);
      runnable.push(number);
    }
    chunk = [];
  };
  const flushErrors = async (): Promise<void> => {
    if (errors.length === 0) return;
    const outcome = await store.record(id, errors);
    if (outcome.gone) throw new Error(`job ${id} disappeared while its input was read`);
    errors = [];
  };

  for await (const { line, text } of spool.lines(file)) {
    if (row >= maxRows) throw new InvalidArgumentError(`the job has more than ${maxRows} rows (jobs.max_rows); split it`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidArgumentError(
        `line ${line} is not JSON (${(err as Error).message}); the rows must be JSON Lines: one {"inputs": [...]} object per line`,
      );
    }
    try {
      const request = inferRequestFromJson(value);
      validateInferRequest(config, request);
      chunk.push({ row, inputs: request.inputs, outputs: request.outputs.map((o) => o.name) });
    } catch (err) {
      const e = toInferneoError(err);
      invalid++;
      if (examples.length < 3) examples.push(`row ${row} (line ${line}): ${e.message}`);
      errors.push({ row, ok: false, line: errorLine(row, e.message, e.code) });
      if (errors.length >= 256) await flushErrors();
    }
    row++;
    if (row % chunkSize === 0) await flushChunk();
  }
  if (row % chunkSize !== 0) await flushChunk();
  await flushErrors();
  return { total: row, chunks: Math.ceil(row / chunkSize), runnable, invalid, examples };
}
