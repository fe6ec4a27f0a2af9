import { bufferToJsonData } from './json-tensor.js';
import type { RequestedOutput } from './infer-request.js';
import type { Tensor } from './tensor.js';

/** What a model returned for one request, before it is written in a protocol's format. */
export interface InferResponse {
  modelName: string;
  modelVersion: string;
  id?: string;
  outputs: Tensor[];
}

export interface EncodedResponse {
  /** The JSON header followed by the binary output data, if any. */
  body: Buffer;
  /** Length of the JSON header when binary data follows it; undefined for a pure-JSON body. */
  headerLength?: number;
}

/**
 * Writes a KServe-v2 response. An output goes in binary when the request said so for it
 * (`outputs[].parameters.binary_data`) or, failing that, for all (`parameters.binary_data_output`).
 * The JSON is assembled as text so tensor data never becomes an array of JS numbers.
 */
export function encodeInferResponse(
  response: InferResponse,
  requested: readonly RequestedOutput[],
  binaryByDefault: boolean,
): EncodedResponse {
  const binaryOf = new Map<string, boolean | undefined>(requested.map((o) => [o.name, o.binary]));
  const binaries: Buffer[] = [];
  const parts = response.outputs.map((t) => {
    const head = `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}]`;
    if (binaryOf.get(t.name) ?? binaryByDefault) {
      binaries.push(t.data);
      return `${head},"parameters":{"binary_data_size":${t.data.length}}}`;
    }
    return `${head},"data":${bufferToJsonData(t.datatype, t.data, t.name)}}`;
  });
  const id = response.id === undefined ? '' : `,"id":${JSON.stringify(response.id)}`;
  const json = Buffer.from(
    `{"model_name":${JSON.stringify(response.modelName)},"model_version":${JSON.stringify(response.modelVersion)}${id},"outputs":[${parts.join(',')}]}`,
  );
  if (binaries.length === 0) return { body: json };
  return { body: Buffer.concat([json, ...binaries]), headerLength: json.length };
}
