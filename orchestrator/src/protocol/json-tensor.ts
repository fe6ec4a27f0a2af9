import { InvalidArgumentError } from '../errors.js';
import { decodeBytesElements, encodeBytesElements } from './bytes-elements.js';
import type { Datatype } from './datatypes.js';
import { float32ToHalfBits, halfBitsToFloat } from './fp16.js';
import { elementCount } from './tensor.js';

/**
 * KServe-v2 JSON tensor data ⇄ raw bytes. JSON `data` is a flat (or nested, row-major) array of
 * numbers, booleans or strings. INT64/UINT64 values above 2^53 cannot survive JSON.parse; clients that
 * need them exactly use the binary extension, which this codec never touches.
 */

const INT_RANGE: Readonly<Partial<Record<Datatype, readonly [number, number]>>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function flatten(data: unknown, what: string): unknown[] {
  if (!Array.isArray(data)) throw new InvalidArgumentError(`${what}: 'data' must be an array`);
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const stack: unknown[][] = [data];
  const index: number[] = [0];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const i = index[index.length - 1]!;
    if (i === top.length) {
      stack.pop();
      index.pop();
      continue;
    }
    index[index.length - 1] = i + 1;
    const item = top[i];
    if (Array.isArray(item)) {
      stack.push(item);
      index.push(0);
    } else {
      out.push(item);
    }
  }
  return out;
}

function badElement(what: string, i: number, value: unknown, expected: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${what}: element ${i} is ${JSON.stringify(value) ?? String(value)}, expected ${expected}`,
  );
}

/** Encodes the JSON `data` of a tensor into raw bytes, checking count and every element's type and range. */
export function jsonDataToBuffer(datatype: Datatype, shape: readonly number[], data: unknown, what: string): Buffer {
  const values = flatten(data, what);
  const count = elementCount(shape);
  if (values.length !== count) {
    throw new InvalidArgumentError(
      `${what}: shape [${shape.join(',')}] needs ${count} elements, 'data' has ${values.length}`,
    );
  }
  switch (datatype) {
    case 'BYTES': {
      const elements = values.map((v, i) => {
        if (typeof v !== 'string') throw badElement(what, i, v, 'a string for BYTES');
        return v;
      });
      return encodeBytesElements(elements);
    }
    case 'BOOL': {
      const out = Buffer.allocUnsafe(count);
      values.forEach((v, i) => {
        if (typeof v !== 'boolean') throw badElement(what, i, v, 'true or false for BOOL');
        out[i] = v ? 1 : 0;
      });
      return out;
    }
    case 'FP16':
    case 'BF16':
    case 'FP32':
    case 'FP64':
      return encodeFloats(datatype, values, what);
    default:
      return encodeIntegers(datatype, values, what);
  }
}

function encodeFloats(datatype: 'FP16' | 'BF16' | 'FP32' | 'FP64', values: unknown[], what: string): Buffer {
  const check = (v: unknown, i: number): number => {
    if (typeof v !== 'number') throw badElement(what, i, v, `a number for ${datatype}`);
    return v;
  };
  if (datatype === 'FP32') {
    const arr = new Float32Array(values.length);
    values.forEach((v, i) => (arr[i] = check(v, i)));
    return Buffer.from(arr.buffer);
  }
  if (datatype === 'FP64') {
    const arr = new Float64Array(values.length);
    values.forEach((v, i) => (arr[i] = check(v, i)));
    return Buffer.from(arr.buffer);
  }
  const arr = new Uint16Array(values.length);
  const toBits = datatype === 'FP16' ? float32ToHalfBits : float32ToBf16Bits;
  values.forEach((v, i) => (arr[i] = toBits(check(v, i))));
  return Buffer.from(arr.buffer);
}

function encodeIntegers(datatype: Datatype, values: unknown[], what: string): Buffer {
  const [min, max] = INT_RANGE[datatype]!;
  const check = (v: unknown, i: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw badElement(what, i, v, `an integer in [${min}, ${max}] for ${datatype}`);
    }
    return v;
  };
  let arr: Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
  switch (datatype) {
    case 'UINT8':
      arr = new Uint8Array(values.length);
      break;
    case 'UINT16':
      arr = new Uint16Array(values.length);
      break;
    case 'UINT32':
      arr = new Uint32Array(values.length);
      break;
    case 'INT8':
      arr = new Int8Array(values.length);
      break;
    case 'INT16':
      arr = new Int16Array(values.length);
      break;
    case 'INT32':
      arr = new Int32Array(values.length);
      break;
    case 'INT64': {
      const big = new BigInt64Array(values.length);
      values.forEach((v, i) => (big[i] = BigInt(check(v, i))));
      return Buffer.from(big.buffer);
    }
    default: {
      const big = new BigUint64Array(values.length);
      values.forEach((v, i) => (big[i] = BigInt(check(v, i))));
      return Buffer.from(big.buffer);
    }
  }
  const typed = arr;
  values.forEach((v, i) => (typed[i] = check(v, i)));
  return Buffer.from(typed.buffer);
}

function float32ToBf16Bits(value: number): number {
  const f = new Float32Array([value]);
  const bits = new Uint32Array(f.buffer)[0]!;
  if (Number.isNaN(value)) return 0x7fc0;
  // Round to nearest even on the 16 bits that are dropped.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

function bf16BitsToFloat(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!;
}

/** A view of `data` as an array-like of numbers or bigints, copying only when `data` is misaligned. */
function typedView(datatype: Datatype, data: Buffer): ArrayLike<number | bigint> {
  const size = datatype === 'BOOL' || datatype.endsWith('8') ? 1 : datatype.endsWith('16') ? 2 : datatype.endsWith('32') ? 4 : 8;
  let buf: ArrayBufferLike = data.buffer;
  let offset = data.byteOffset;
  if (offset % size !== 0) {
    buf = new Uint8Array(data).buffer;
    offset = 0;
  }
  const n = data.length / size;
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(buf, offset, n);
    case 'INT8':
      return new Int8Array(buf, offset, n);
    case 'UINT16':
    case 'FP16':
    case 'BF16':
      return new Uint16Array(buf, offset, n);
    case 'INT16':
      return new Int16Array(buf, offset, n);
    case 'UINT32':
      return new Uint32Array(buf, offset, n);
    case 'INT32':
      return new Int32Array(buf, offset, n);
    case 'FP32':
      return new Float32Array(buf, offset, n);
    case 'INT64':
      return new BigInt64Array(buf, offset, n);
    case 'UINT64':
      return new BigUint64Array(buf, offset, n);
    default:
      return new Float64Array(buf, offset, n);
  }
}

function jsonNumber(value: number): string {
  // JSON has no NaN or Infinity; null is what JSON.stringify writes for them too.
  return Number.isFinite(value) ? String(value) : 'null';
}

/** Writes raw tensor data as the text of a JSON array (built as a string: no intermediate arrays). */
export function bufferToJsonData(datatype: Datatype, data: Buffer, name = 'output'): string {
  if (datatype === 'BYTES') {
    return '[' + decodeBytesElements(data, name).map((e) => JSON.stringify(e.toString('utf8'))).join(',') + ']';
  }
  const view = typedView(datatype, data);
  const parts = new Array<string>(view.length);
  for (let i = 0; i < view.length; i++) {
    const v = view[i]!;
    if (datatype === 'BOOL') parts[i] = v ? 'true' : 'false';
    else if (datatype === 'FP16') parts[i] = jsonNumber(halfBitsToFloat(v as number));
    else if (datatype === 'BF16') parts[i] = jsonNumber(bf16BitsToFloat(v as number));
    else if (typeof v === 'bigint') parts[i] = v.toString();
    else parts[i] = jsonNumber(v);
  }
  return '[' + parts.join(',') + ']';
}
