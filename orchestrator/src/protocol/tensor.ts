import { InvalidArgumentError } from '../errors.js';
import { decodeBytesElements } from './bytes-elements.js';
import { type Datatype, elementSize } from './datatypes.js';

/**
 * A tensor in raw form, the one representation used between the HTTP/gRPC codecs, the scheduler
 * and the backends. `data` is little-endian row-major (see datatypes.ts); it may be a view into a
 * request body or a worker frame, so whoever holds a Tensor must not write into `data`.
 */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Buffer;
}

/** Product of the dimensions; a shape of [] is a scalar (one element). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes that `shape` elements of `datatype` occupy, or undefined for BYTES. */
export function byteSizeOf(datatype: Datatype, shape: readonly number[]): number | undefined {
  const size = elementSize(datatype);
  return size === undefined ? undefined : size * elementCount(shape);
}

/**
 * Checks that `data` holds exactly the elements `shape` promises; for BYTES, that it parses into
 * exactly that many length-prefixed elements. Throws INVALID_ARGUMENT naming the tensor.
 */
export function assertTensorSize(tensor: Tensor, role = 'input'): void {
  const expected = byteSizeOf(tensor.datatype, tensor.shape);
  if (expected !== undefined) {
    if (tensor.data.length !== expected) {
      throw new InvalidArgumentError(
        `${role} '${tensor.name}': ${tensor.datatype} shape [${tensor.shape.join(',')}] needs ${expected} bytes, got ${tensor.data.length}`,
      );
    }
    return;
  }
  const count = decodeBytesElements(tensor.data, tensor.name).length;
  const want = elementCount(tensor.shape);
  if (count !== want) {
    throw new InvalidArgumentError(
      `${role} '${tensor.name}': BYTES shape [${tensor.shape.join(',')}] needs ${want} elements, got ${count}`,
    );
  }
}

/** Validates a shape given by a client: a list of non-negative integers. */
export function parseShape(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${what}: 'shape' must be an array of integers`);
  const shape: number[] = [];
  for (const d of value) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new InvalidArgumentError(
        `${what}: 'shape' must hold non-negative integers, got ${JSON.stringify(d)}`,
      );
    }
    shape.push(d);
  }
  return shape;
}

/**
 * Joins tensors of the same name, datatype and non-batch dimensions along the first dimension (one
 * copy). The batcher only groups requests whose shapes agree, so callers need not check again.
 */
export function concatRows(tensors: readonly Tensor[]): Tensor {
  const first = tensors[0]!;
  if (tensors.length === 1) return first;
  let rows = 0;
  for (const t of tensors) rows += t.shape[0] ?? 1;
  return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data: Buffer.concat(tensors.map((t) => t.data)) };
}

/** Splits a tensor along its first dimension into pieces of `rows[i]` rows; the pieces are views, not copies. */
export function splitRows(tensor: Tensor, rows: readonly number[]): Tensor[] {
  const total = tensor.shape[0] ?? 0;
  const sum = rows.reduce((a, b) => a + b, 0);
  if (sum !== total) throw new InvalidArgumentError(`output '${tensor.name}' has ${total} rows, the batch had ${sum}`);
  const rest = tensor.shape.slice(1);
  const perRow = elementCount(rest);
  const size = byteSizeOf(tensor.datatype, [perRow]);
  const out: Tensor[] = [];
  let offset = 0;
  if (size !== undefined) {
    for (const r of rows) {
      out.push({ name: tensor.name, datatype: tensor.datatype, shape: [r, ...rest], data: tensor.data.subarray(offset, offset + r * size) });
      offset += r * size;
    }
    return out;
  }
  // BYTES: walk the length prefixes to find where each request's elements end.
  for (const r of rows) {
    const start = offset;
    for (let e = 0; e < r * perRow; e++) {
      if (offset + 4 > tensor.data.length) throw new InvalidArgumentError(`BYTES output '${tensor.name}' is shorter than its shape says`);
      offset += 4 + tensor.data.readUInt32LE(offset);
    }
    out.push({ name: tensor.name, datatype: tensor.datatype, shape: [r, ...rest], data: tensor.data.subarray(start, offset) });
  }
  return out;
}
