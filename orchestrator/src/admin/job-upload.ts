import type { Request } from 'express';
import busboy from 'busboy';
import { InvalidArgumentError } from '../errors.js';
import type { InputSpool } from '../jobs/input-spool.js';

/**
 * A multipart/form-data job submission: the job's settings as form fields and its rows as a JSON
 * Lines file in the field `rows`, streamed by busboy straight into a spool file (never buffered
 * whole). The caller owns the spool file it gets back and must remove it.
 */

export interface JobUpload {
  fields: Record<string, string>;
  /** The spool file holding the rows. */
  file: string;
}

const MAX_FIELD_BYTES = 64 * 1024;

export function isMultipart(req: Request): boolean {
  return /^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '');
}

export function readJobUpload(req: Request, spool: InputSpool): Promise<JobUpload> {
  return new Promise<JobUpload>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1, fields: 32, fieldSize: MAX_FIELD_BYTES, fileSize: spool.maxBytes + 1 } });
    } catch (err) {
      reject(new InvalidArgumentError(`malformed multipart request: ${(err as Error).message}`));
      return;
    }
    const fields: Record<string, string> = {};
    let spooled: Promise<{ file: string }> | undefined;
    let fileStream: NodeJS.ReadableStream & { destroy(error?: Error): void } | undefined;
    let failure: Error | undefined;
    let settled = false;

    const fail = (err: Error): void => {
      failure ??= err;
      if (settled) return;
      settled = true;
      // Stop parsing; what the client still sends is read and discarded so the answer can go out.
      req.unpipe(parser);
      req.resume();
      // The spool removes its partial file when its source fails.
      fileStream?.destroy(failure);
      void spooled?.then((s) => spool.remove(s.file), () => undefined);
      reject(failure);
    };

    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(new InvalidArgumentError(`form field '${name}' is longer than ${MAX_FIELD_BYTES} bytes`));
      else if (name === 'rows') fail(new InvalidArgumentError("form field 'rows' must be a file (curl: -F rows=@rows.jsonl), not a text field"));
      else fields[name] = value;
    });
    parser.on('file', (name, stream) => {
      if (name !== 'rows' || spooled !== undefined) {
        stream.resume();
        fail(new InvalidArgumentError(`unexpected file field '${name}': send the rows as one JSON Lines file in the field 'rows'`));
        return;
      }
      fileStream = stream;
      // Destroyed on failure (see fail), maybe after the spool is done with it: nothing else listens then.
      stream.on('error', () => undefined);
      spooled = spool.write(stream, "the file 'rows'");
      spooled.catch((err: Error) => fail(err));
    });
    parser.on('filesLimit', () => fail(new InvalidArgumentError("send exactly one file, 'rows'")));
    parser.on('fieldsLimit', () => fail(new InvalidArgumentError('too many form fields')));
    parser.on('error', (err: Error) => fail(new InvalidArgumentError(`malformed multipart request: ${err.message}`)));
    parser.on('close', () => {
      if (settled) return;
      if (spooled === undefined) {
        fail(new InvalidArgumentError("the multipart request has no file 'rows': send the rows as a JSON Lines file in the field 'rows'"));
        return;
      }
      spooled.then(
        ({ file }) => {
          if (settled) {
            void spool.remove(file);
            return;
          }
          settled = true;
          resolve({ fields, file });
        },
        (err: Error) => fail(err),
      );
    });
    req.on('error', (err) => fail(err));
    req.pipe(parser);
  });
}
