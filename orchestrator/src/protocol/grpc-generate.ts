import { InvalidArgumentError } from '../errors.js';
import { decodeBytesElements, encodeBytesElements } from './bytes-elements.js';
import type { GrpcInferParameter, GrpcModelInferResponse } from './grpc-tensor.js';
import type { InferRequest } from './infer-request.js';
import { elementCount, type Tensor } from './tensor.js';

/**
 * gRPC ModelStreamInfer requests to a decoupled (text-generation) model, as Triton's vLLM backend
 * takes them: each input tensor holds one element (`text_input` BYTES, `stream` BOOL,
 * `sampling_parameters` BYTES holding JSON, `exclude_input_in_output` BOOL, or a sampling field such
 * as `max_tokens` INT32) and becomes a field of a generate request (llm/generate-request.ts), the
 * request's parameters its `parameters`. Each answer is a ModelInferResponse with one `text_output`
 * BYTES [1] output and Triton's `triton_final_response` parameter.
 */

/** Triton's request parameter asking for an empty response that only says the stream of one request ended. */
export const EMPTY_FINAL_PARAMETER = 'triton_enable_empty_final_response';
/** Triton's response parameter marking the last response to a request of a decoupled model. */
export const FINAL_PARAMETER = 'triton_final_response';
export const TEXT_OUTPUT = 'text_output';

/** The single value of a one-element tensor: a string for BYTES, a boolean for BOOL, a number otherwise. */
function tensorValue(t: Tensor): unknown {
  const what = `input '${t.name}'`;
  const count = elementCount(t.shape);
  if (count !== 1) throw new InvalidArgumentError(`${t.name}: ${what} must hold exactly one element, got shape [${t.shape.join(',')}]`);
  const d = t.data;
  switch (t.datatype) {
    case 'BYTES':
      return decodeBytesElements(d, t.name)[0]!.toString('utf8');
    case 'BOOL':
      return d[0] !== 0;
    case 'INT8':
      return d.readInt8(0);
    case 'UINT8':
      return d.readUInt8(0);
    case 'INT16':
      return d.readInt16LE(0);
    case 'UINT16':
      return d.readUInt16LE(0);
    case 'INT32':
      return d.readInt32LE(0);
    case 'UINT32':
      return d.readUInt32LE(0);
    case 'INT64':
      return Number(d.readBigInt64LE(0));
    case 'UINT64':
      return Number(d.readBigUInt64LE(0));
    case 'FP32':
      return d.readFloatLE(0);
    case 'FP64':
      return d.readDoubleLE(0);
    default:
      throw new InvalidArgumentError(`${t.name}: ${what} of datatype ${t.datatype} is not taken by text generation; use BYTES, BOOL, an integer or FP32/FP64`);
  }
}

/** Datatypes the vLLM backend declares for its inputs; a sampling field may come as any number type. */
const EXPECTED: Readonly<Record<string, string>> = { text_input: 'BYTES', stream: 'BOOL', exclude_input_in_output: 'BOOL', sampling_parameters: 'BYTES' };

export interface GrpcGenerateRequest {
  /** The fields of a generate request (llm/generate-request.ts reads and checks them). */
  body: Record<string, unknown>;
  /** `triton_enable_empty_final_response`: end a streamed answer with an empty response. */
  emptyFinal: boolean;
}

/**
 * A decoded ModelInferRequest as a generate request. Checks the datatypes of the vLLM backend's own
 * inputs and that each input holds one element; only `text_output` may be requested as output.
 */
export function generateRequestFromGrpc(request: InferRequest): GrpcGenerateRequest {
  const body: Record<string, unknown> = {};
  for (const t of request.inputs) {
    const expected = EXPECTED[t.name];
    if (expected !== undefined && t.datatype !== expected) throw new InvalidArgumentError(`${t.name}: input '${t.name}' must be ${expected}, got ${t.datatype}`);
    body[t.name] = tensorValue(t);
  }
  for (const o of request.outputs) {
    if (o.name !== TEXT_OUTPUT) throw new InvalidArgumentError(`${o.name}: unexpected output; a text-generation model answers '${TEXT_OUTPUT}'`);
  }
  const { [EMPTY_FINAL_PARAMETER]: emptyFinal = false, ...parameters } = request.parameters;
  if (typeof emptyFinal !== 'boolean') throw new InvalidArgumentError(`${EMPTY_FINAL_PARAMETER}: invalid value type, expected bool_param`);
  body['parameters'] = parameters;
  if (request.id !== undefined) body['id'] = request.id;
  return { body, emptyFinal };
}

export interface GeneratedPiece {
  modelName: string;
  modelVersion: string;
  id: string;
  /** The text of this response; undefined for Triton's empty final response (no outputs). */
  text: string | undefined;
  final: boolean;
}

/** One response of a decoupled model in Triton's gRPC form. */
export function encodeGeneratedPiece(piece: GeneratedPiece): GrpcModelInferResponse {
  const parameters: Record<string, GrpcInferParameter> = { [FINAL_PARAMETER]: { bool_param: piece.final } };
  const base = { model_name: piece.modelName, model_version: piece.modelVersion, id: piece.id, parameters };
  if (piece.text === undefined) return { ...base, outputs: [], raw_output_contents: [] };
  return {
    ...base,
    outputs: [{ name: TEXT_OUTPUT, datatype: 'BYTES', shape: [1], parameters: {} }],
    raw_output_contents: [encodeBytesElements([piece.text])],
  };
}
