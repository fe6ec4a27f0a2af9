import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { InvalidArgumentError, PayloadTooLargeError, UnsupportedError } from '../errors.js';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/**
 * Reads a request body into one Buffer, refusing (413) as soon as it is known to exceed `limit` —
 * from Content-Length before reading anything, or while reading — so an oversized upload is never
 * held in memory. Bodies compressed with gzip or deflate (tritonclient's request compression) are
 * inflated under the same limit.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new PayloadTooLargeError(`request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return; // keep draining so the 413 can still be written; the socket closes after it
      size += chunk.length;
      if (size > limit) {
        refused = true;
        chunks.length = 0;
        reject(new PayloadTooLargeError(`request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', (err) => reject(new InvalidArgumentError(`request body could not be read: ${err.message}`)));
    req.once('aborted', () => reject(new InvalidArgumentError('the client aborted the request body')));
  });
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return body;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new UnsupportedError(`Content-Encoding '${encoding}' is not supported; use gzip, deflate or none`);
  }
  try {
    return await (encoding === 'gzip' ? gunzip : inflate)(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PayloadTooLargeError(`decompressed request body exceeds the limit of ${limit} bytes`);
    }
    throw new InvalidArgumentError(`request body is not valid ${encoding} data: ${(err as Error).message}`);
  }
}
