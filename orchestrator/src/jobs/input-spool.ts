import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PayloadTooLargeError } from '../errors.js';

/**
 * Where a job's input waits on disk while it is checked and split into chunks: an upload is
 * streamed into a spool file (never held in memory as a whole) and cut off with 413 as soon as it
 * passes the size limit; the file is read back line by line and deleted once the job exists (or
 * the submit failed). The owner of a spool file is the submit that created it.
 */

export interface InputSpoolOptions {
  /** Directory of the spool files; created when missing. */
  dir: string;
  /** Largest spool file, in bytes. */
  maxBytes: number;
}

/** One line of a spool file and its 1-based line number (blank lines are skipped). */
export interface SpoolLine {
  line: number;
  text: string;
}

export class InputSpool {
  readonly dir: string;
  readonly maxBytes: number;

  constructor(options: InputSpoolOptions) {
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes;
  }

  private async newFile(): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return path.join(this.dir, `${randomUUID()}.jsonl`);
  }

  /**
   * Streams `source` into a new spool file. Rejects with PAYLOAD_TOO_LARGE once more than
   * `maxBytes` arrived (the partial file is deleted), or with the stream's own error.
   */
  async write(source: Readable, what = 'the upload'): Promise<{ file: string; bytes: number }> {
    const file = await this.newFile();
    let bytes = 0;
    const limit = this.maxBytes;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        if (bytes > limit) callback(new PayloadTooLargeError(`${what} is larger than the limit of ${limit} bytes (jobs.max_upload_bytes)`));
        else callback(null, chunk);
      },
    });
    try {
      await pipeline(source, counter, createWriteStream(file, { mode: 0o600 }));
    } catch (err) {
      await this.remove(file);
      throw err;
    }
    return { file, bytes };
  }

  /** Writes rows given inline (a JSON body) as a spool file, one JSON line each. */
  async writeRows(rows: readonly unknown[]): Promise<{ file: string; bytes: number }> {
    const file = await this.newFile();
    const out = createWriteStream(file, { mode: 0o600 });
    let bytes = 0;
    try {
      for (const row of rows) {
        const line = `${JSON.stringify(row)}\n`;
        bytes += Buffer.byteLength(line);
        if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      out.destroy();
      await this.remove(file);
      throw err;
    }
    return { file, bytes };
  }

  /** The non-blank lines of a spool file, in order. */
  async *lines(file: string): AsyncGenerator<SpoolLine> {
    const input = createReadStream(file, { encoding: 'utf8' });
    const reader = createInterface({ input, crlfDelay: Infinity });
    let line = 0;
    try {
      for await (const text of reader) {
        line++;
        if (text.trim() !== '') yield { line, text };
      }
    } finally {
      reader.close();
      input.destroy();
    }
  }

  async remove(file: string): Promise<void> {
    await rm(file, { force: true });
  }
}
