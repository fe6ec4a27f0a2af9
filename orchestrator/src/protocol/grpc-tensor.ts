import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { encodeBytesElements } from './bytes-elements.js';
import { type Datatype, isDatatype } from './datatypes.js';
import type { InferRequest, RequestedOutput } from './infer-request.js';
import type { InferResponse } from './infer-response.js';
import { byteSizeOf, elementCount, type Tensor } from './tensor.js';

/**
 * Triton's gRPC inference messages (`ModelInferRequest`, `ModelInferResponse`) ⇄ the InferRequest
 * and Tensor types every other layer uses. Input data comes either as `raw_input_contents` (one
 * little-endian row-major buffer per input, kept as a view: never copied) or as typed
 * `InferTensorContents` fields (converted to raw bytes once, here); responses always carry
 * `raw_output_contents`, as Triton's own gRPC server does. The message shapes are those decoded
 * with PROTO_LOADER_OPTIONS (grpc-proto.ts): 64-bit integers arrive as decimal strings.
 */

/** A 64-bit integer as decoded (decimal string) or as a caller may give it. */
export type Int64Like = string | number | bigint;

export interface GrpcInferParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: Int64Like;
  string_param?: string;
  double_param?: number;
  uint64_param?: Int64Like;
}

export interface GrpcTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Int64Like[];
  uint_contents?: number[];
  uint64_contents?: Int64Like[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface GrpcInferInputTensor {
  name: string;
  datatype: string;
  shape: Int64Like[];
  parameters?: Record<string, GrpcInferParameter>;
  contents?: GrpcTensorContents | null;
}

export interface GrpcRequestedOutput {
  name: string;
  parameters?: Record<string, GrpcInferParameter>;
}

export interface GrpcModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, GrpcInferParameter>;
  inputs?: GrpcInferInputTensor[];
  outputs?: GrpcRequestedOutput[];
  raw_input_contents?: Buffer[];
}

export interface GrpcInferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters: Record<string, GrpcInferParameter>;
}

export interface GrpcModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, GrpcInferParameter>;
  outputs: GrpcInferOutputTensor[];
  raw_output_contents: Buffer[];
}

/** The typed-contents field that carries each datatype; FP16 and BF16 have none (raw only). */
const CONTENTS_FIELD: Readonly<Record<Datatype, keyof GrpcTensorContents | undefined>> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP16: undefined,
  BF16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

const CONTENTS_FIELDS: readonly (keyof GrpcTensorContents)[] = [
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp32_contents',
  'fp64_contents',
  'bytes_contents',
];

const SMALL_INT_RANGE: Readonly<Partial<Record<Datatype, readonly [number, number]>>> = {
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
};

/** A 64-bit protobuf integer as a JS number when it is exactly representable, else as its decimal string. */
function int64Value(value: Int64Like): number | string {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : String(value);
}

/** The value of one InferParameter: boolean, number or string (64-bit integers beyond 2^53 stay strings). */
export function parameterValue(param: GrpcInferParameter, what: string): unknown {
  switch (param.parameter_choice) {
    case 'bool_param':
      return param.bool_param === true;
    case 'int64_param':
      return int64Value(param.int64_param ?? 0);
    case 'uint64_param':
      return int64Value(param.uint64_param ?? 0);
    case 'double_param':
      return param.double_param ?? 0;
    case 'string_param':
      return param.string_param ?? '';
    default:
      throw new InvalidArgumentError(`${what} has no value (set one of bool_param, int64_param, string_param, double_param, uint64_param)`);
  }
}

/** A parameters map as plain values, in the form the HTTP codec produces. */
export function parametersFromGrpc(params: Record<string, GrpcInferParameter> | undefined, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, param] of Object.entries(params ?? {})) out[key] = parameterValue(param, `${what} parameter '${key}'`);
  return out;
}

/** Plain values as an InferParameter map (integers as int64, other numbers as double). */
export function parametersToGrpc(values: Record<string, boolean | number | string>): Record<string, GrpcInferParameter> {
  const out: Record<string, GrpcInferParameter> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'boolean') out[key] = { bool_param: value };
    else if (typeof value === 'string') out[key] = { string_param: value };
    else if (Number.isSafeInteger(value)) out[key] = { int64_param: value };
    else out[key] = { double_param: value };
  }
  return out;
}

function parseGrpcShape(shape: readonly Int64Like[] | undefined, what: string): number[] {
  return (shape ?? []).map((d) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new InvalidArgumentError(`${what}: 'shape' must hold non-negative integers, got ${String(d)}`);
    }
    return n;
  });
}

function refuseSharedMemory(params: Record<string, GrpcInferParameter> | undefined, what: string): void {
  if (params !== undefined && Object.keys(params).some((k) => k.startsWith('shared_memory_'))) {
    throw new UnsupportedError(`${what}: shared memory is not supported by Inferneo; send the data in the request`);
  }
}

/** The raw bytes of typed contents, after checking the field fits the datatype and holds exactly `count` values. */
export function contentsToBuffer(datatype: Datatype, shape: readonly number[], contents: GrpcTensorContents | null | undefined, what: string): Buffer {
  const field = CONTENTS_FIELD[datatype];
  const count = elementCount(shape);
  const given = CONTENTS_FIELDS.filter((f) => (contents?.[f]?.length ?? 0) > 0);
  if (field === undefined) {
    throw new InvalidArgumentError(`${what}: ${datatype} data has no typed contents field; send it in raw_input_contents`);
  }
  const wrong = given.find((f) => f !== field);
  if (wrong !== undefined) {
    throw new InvalidArgumentError(`${what}: ${datatype} values belong in contents.${field}, not contents.${wrong}`);
  }
  const values = (contents?.[field] ?? []) as readonly unknown[];
  if (values.length !== count) {
    const where = given.length === 0 ? 'no data (neither contents nor raw_input_contents)' : `${values.length} values in contents.${field}`;
    throw new InvalidArgumentError(`${what}: shape [${shape.join(',')}] needs ${count} elements, got ${where}`);
  }
  switch (datatype) {
    case 'BOOL': {
      const out = Buffer.allocUnsafe(count);
      for (let i = 0; i < count; i++) out[i] = values[i] === true ? 1 : 0;
      return out;
    }
    case 'FP32':
      return Buffer.from(Float32Array.from(values as number[]).buffer);
    case 'FP64':
      return Buffer.from(Float64Array.from(values as number[]).buffer);
    case 'INT32':
      return Buffer.from(Int32Array.from(values as number[]).buffer);
    case 'UINT32':
      return Buffer.from(Uint32Array.from(values as number[]).buffer);
    case 'INT64':
    case 'UINT64': {
      const arr = datatype === 'INT64' ? new BigInt64Array(count) : new BigUint64Array(count);
      const [min, max] = datatype === 'INT64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      for (let i = 0; i < count; i++) {
        let v: bigint;
        try {
          v = BigInt(values[i] as Int64Like);
        } catch {
          throw new InvalidArgumentError(`${what}: element ${i} is ${String(values[i])}, expected an integer for ${datatype}`);
        }
        if (v < min || v > max) throw new InvalidArgumentError(`${what}: element ${i} is ${v}, outside the range of ${datatype}`);
        arr[i] = v;
      }
      return Buffer.from(arr.buffer);
    }
    case 'BYTES':
      return encodeBytesElements(values as Buffer[]);
    default: {
      // INT8, INT16, UINT8, UINT16: carried as 32-bit values, checked against the narrower range.
      const [min, max] = SMALL_INT_RANGE[datatype]!;
      const arr =
        datatype === 'INT8' ? new Int8Array(count) : datatype === 'INT16' ? new Int16Array(count) : datatype === 'UINT8' ? new Uint8Array(count) : new Uint16Array(count);
      for (let i = 0; i < count; i++) {
        const v = values[i] as number;
        if (v < min || v > max) throw new InvalidArgumentError(`${what}: element ${i} is ${v}, outside the range of ${datatype} [${min}, ${max}]`);
        arr[i] = v;
      }
      return Buffer.from(arr.buffer);
    }
  }
}

/**
 * Turns a decoded ModelInferRequest into an InferRequest. Checks what the message alone can show
 * (names, datatypes, shapes, one raw buffer per input and its byte size, typed contents that fit the
 * datatype); whether the tensors fit the model is the registry's check (input-validation.ts).
 */
export function decodeModelInferRequest(message: GrpcModelInferRequest): InferRequest {
  const inputs = message.inputs ?? [];
  if (inputs.length === 0) throw new InvalidArgumentError(`inference request needs at least one input in 'inputs'`);
  const raw = message.raw_input_contents ?? [];
  const useRaw = raw.length > 0;
  if (useRaw && raw.length !== inputs.length) {
    throw new InvalidArgumentError(
      `raw_input_contents has ${raw.length} entries but the request has ${inputs.length} inputs; give one per input, in the order of 'inputs'`,
    );
  }
  const seen = new Set<string>();
  const tensors: Tensor[] = inputs.map((input, i) => {
    const name = input.name;
    if (typeof name !== 'string' || name === '') throw new InvalidArgumentError(`inputs[${i}] needs a name`);
    const what = `input '${name}'`;
    if (seen.has(name)) throw new InvalidArgumentError(`${what} is given more than once`);
    seen.add(name);
    const datatype = input.datatype;
    if (!isDatatype(datatype)) throw new InvalidArgumentError(`${what}: unknown datatype ${JSON.stringify(datatype)}`);
    const shape = parseGrpcShape(input.shape, what);
    refuseSharedMemory(input.parameters, what);
    if (!useRaw) return { name, datatype, shape, data: contentsToBuffer(datatype, shape, input.contents, what) };
    if (input.contents !== null && input.contents !== undefined) {
      throw new InvalidArgumentError(`${what} has typed contents although the request uses raw_input_contents; use one or the other for all inputs`);
    }
    const data = raw[i]!;
    const expected = byteSizeOf(datatype, shape);
    if (expected !== undefined && data.length !== expected) {
      throw new InvalidArgumentError(`${what}: ${datatype} shape [${shape.join(',')}] needs ${expected} bytes, raw_input_contents[${i}] has ${data.length}`);
    }
    return { name, datatype, shape, data };
  });
  const outputs: RequestedOutput[] = (message.outputs ?? []).map((o, i) => {
    if (typeof o.name !== 'string' || o.name === '') throw new InvalidArgumentError(`outputs[${i}] needs a name`);
    const what = `output '${o.name}'`;
    refuseSharedMemory(o.parameters, what);
    if (o.parameters?.['classification'] !== undefined) throw new UnsupportedError(`${what}: the classification extension is not supported`);
    return { name: o.name };
  });
  const request: InferRequest = { inputs: tensors, outputs, binaryOutputs: true, parameters: parametersFromGrpc(message.parameters, 'request') };
  if (message.id !== undefined && message.id !== '') request.id = message.id;
  return request;
}

/** A response in Triton's gRPC form: outputs described in `outputs`, their bytes in `raw_output_contents` (views, not copies). */
export function encodeModelInferResponse(response: InferResponse, parameters: Record<string, GrpcInferParameter> = {}): GrpcModelInferResponse {
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id ?? '',
    parameters,
    outputs: response.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: {} })),
    raw_output_contents: response.outputs.map((t) => t.data),
  };
}
