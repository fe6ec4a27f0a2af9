import { InvalidArgumentError } from '../errors.js';

/**
 * BYTES tensors in raw form: each element is a 4-byte little-endian length followed by that many
 * bytes. This is the layout of Triton's binary tensor extension and of the worker protocol, so a
 * BYTES tensor crosses every boundary without being re-encoded.
 */

export function encodeBytesElements(elements: readonly (Buffer | string)[]): Buffer {
  const buffers = elements.map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8') : e));
  let total = 0;
  for (const b of buffers) total += 4 + b.length;
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const b of buffers) {
    out.writeUInt32LE(b.length, offset);
    offset += 4;
    b.copy(out, offset);
    offset += b.length;
  }
  return out;
}

/** Splits raw BYTES data into its elements (views into `data`, not copies). */
export function decodeBytesElements(data: Buffer, tensorName = 'tensor'): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) {
      throw new InvalidArgumentError(
        `BYTES data of '${tensorName}' is truncated: element ${out.length} has an incomplete 4-byte length`,
      );
    }
    const length = data.readUInt32LE(offset);
    offset += 4;
    if (offset + length > data.length) {
      throw new InvalidArgumentError(
        `BYTES data of '${tensorName}' is truncated: element ${out.length} declares ${length} bytes but ${data.length - offset} remain`,
      );
    }
    out.push(data.subarray(offset, offset + length));
    offset += length;
  }
  return out;
}
