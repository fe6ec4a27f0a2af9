import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { isDatatype } from './datatypes.js';
import { jsonDataToBuffer } from './json-tensor.js';
import { byteSizeOf, parseShape, type Tensor } from './tensor.js';

/**
 * Parses a KServe-v2 inference request body, JSON or with Triton's binary tensor extension
 * (https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md):
 * the first `Inference-Header-Content-Length` bytes are the JSON header, the binary data of every
 * input that has `parameters.binary_data_size` follows in input order. Binary inputs become views
 * into `body`, so the body is never copied for them.
 */

export interface RequestedOutput {
  name: string;
  /** Explicit `parameters.binary_data` of this output; undefined = the request's default. */
  binary?: boolean;
}

export interface InferRequest {
  id?: string;
  inputs: Tensor[];
  /** Outputs the client asked for; empty means all of the model's outputs. */
  outputs: RequestedOutput[];
  /** `parameters.binary_data_output`: the default for outputs without their own `binary_data`. */
  binaryOutputs: boolean;
  /** Request-level parameters, as given (priority, timeout, …). */
  parameters: Record<string, unknown>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parameters(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) throw new InvalidArgumentError(`${what}: 'parameters' must be an object`);
  if ('shared_memory_region' in value) {
    throw new UnsupportedError(`${what}: shared memory is not supported by Inferneo; send the data in the request`);
  }
  return value;
}

const EMPTY = Buffer.alloc(0);

export function parseInferRequest(body: Buffer, headerLength?: number): InferRequest {
  if (headerLength !== undefined && (!Number.isSafeInteger(headerLength) || headerLength < 0)) {
    throw new InvalidArgumentError(`Inference-Header-Content-Length must be a non-negative integer`);
  }
  if (headerLength !== undefined && headerLength > body.length) {
    throw new InvalidArgumentError(
      `Inference-Header-Content-Length is ${headerLength} but the body has only ${body.length} bytes`,
    );
  }
  const headerEnd = headerLength ?? body.length;
  let header: unknown;
  try {
    header = JSON.parse(body.toString('utf8', 0, headerEnd));
  } catch (err) {
    throw new InvalidArgumentError(`malformed JSON in inference request: ${(err as Error).message}`);
  }
  return inferRequestFromJson(header, body, headerEnd);
}

/**
 * An inference request already parsed from JSON (e.g. one line of a batch job's JSON Lines input),
 * with the same checks as `parseInferRequest`. `body` and `headerEnd` locate binary input data; a
 * request without any passes neither.
 */
export function inferRequestFromJson(header: unknown, body: Buffer = EMPTY, headerEnd = 0): InferRequest {
  if (!isObject(header)) throw new InvalidArgumentError('inference request must be a JSON object');

  const requestParams = parameters(header['parameters'], 'request');
  let id: string | undefined;
  if (header['id'] !== undefined) {
    if (typeof header['id'] !== 'string') throw new InvalidArgumentError(`request 'id' must be a string`);
    id = header['id'];
  }

  const rawInputs = header['inputs'];
  if (!Array.isArray(rawInputs) || rawInputs.length === 0) {
    throw new InvalidArgumentError(`inference request needs a non-empty 'inputs' array`);
  }
  let offset = headerEnd;
  const seen = new Set<string>();
  const inputs: Tensor[] = rawInputs.map((raw: unknown, i: number) => {
    if (!isObject(raw)) throw new InvalidArgumentError(`inputs[${i}] must be an object`);
    const name = raw['name'];
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError(`inputs[${i}] needs a 'name' string`);
    }
    const what = `input '${name}'`;
    if (seen.has(name)) throw new InvalidArgumentError(`${what} is given more than once`);
    seen.add(name);
    const datatype = raw['datatype'];
    if (!isDatatype(datatype)) {
      throw new InvalidArgumentError(`${what}: unknown datatype ${JSON.stringify(datatype)}`);
    }
    const shape = parseShape(raw['shape'], what);
    const params = parameters(raw['parameters'], what);
    const binarySize = params['binary_data_size'];
    if (binarySize !== undefined) {
      if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0) {
        throw new InvalidArgumentError(`${what}: 'binary_data_size' must be a non-negative integer`);
      }
      if (raw['data'] !== undefined) {
        throw new InvalidArgumentError(`${what} has both 'data' and 'binary_data_size'`);
      }
      if (offset + binarySize > body.length) {
        throw new InvalidArgumentError(
          `${what}: binary data is truncated: expected ${binarySize} bytes, ${body.length - offset} remain in the body`,
        );
      }
      const expected = byteSizeOf(datatype, shape);
      if (expected !== undefined && expected !== binarySize) {
        throw new InvalidArgumentError(
          `${what}: ${datatype} shape [${shape.join(',')}] needs ${expected} bytes, 'binary_data_size' is ${binarySize}`,
        );
      }
      const data = body.subarray(offset, offset + binarySize);
      offset += binarySize;
      return { name, datatype, shape, data };
    }
    if (raw['data'] === undefined) {
      throw new InvalidArgumentError(`${what} has neither 'data' nor 'parameters.binary_data_size'`);
    }
    return { name, datatype, shape, data: jsonDataToBuffer(datatype, shape, raw['data'], what) };
  });
  if (offset !== body.length) {
    throw new InvalidArgumentError(
      `${body.length - offset} bytes follow the inputs' data in the body; no input's 'binary_data_size' accounts for them`,
    );
  }

  const outputs: RequestedOutput[] = [];
  const rawOutputs = header['outputs'];
  if (rawOutputs !== undefined) {
    if (!Array.isArray(rawOutputs)) throw new InvalidArgumentError(`'outputs' must be an array`);
    rawOutputs.forEach((raw: unknown, i: number) => {
      if (!isObject(raw) || typeof raw['name'] !== 'string') {
        throw new InvalidArgumentError(`outputs[${i}] needs a 'name' string`);
      }
      const what = `output '${raw['name']}'`;
      const params = parameters(raw['parameters'], what);
      if (params['classification'] !== undefined) {
        throw new UnsupportedError(`${what}: the classification extension is not supported`);
      }
      const binary = params['binary_data'];
      if (binary !== undefined && typeof binary !== 'boolean') {
        throw new InvalidArgumentError(`${what}: 'binary_data' must be true or false`);
      }
      outputs.push(binary === undefined ? { name: raw['name'] } : { name: raw['name'], binary });
    });
  }
  const binaryOutputs = requestParams['binary_data_output'];
  if (binaryOutputs !== undefined && typeof binaryOutputs !== 'boolean') {
    throw new InvalidArgumentError(`request 'binary_data_output' must be true or false`);
  }
  const request: InferRequest = { inputs, outputs, binaryOutputs: binaryOutputs === true, parameters: requestParams };
  if (id !== undefined) request.id = id;
  return request;
}
