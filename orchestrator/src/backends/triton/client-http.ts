import { Pool } from 'undici';
import { ErrorCode, InferneoError } from '../../errors.js';
import { isDatatype } from '../../protocol/datatypes.js';
import { jsonDataToBuffer } from '../../protocol/json-tensor.js';
import type { Tensor } from '../../protocol/tensor.js';
import type { TritonClient, TritonIndexEntry, TritonInferCall } from './triton-client.js';
import { tritonHttpError, tritonTransportError } from './triton-errors.js';

/**
 * Triton's KServe-v2 HTTP API over a keep-alive undici Pool. Inference uses Triton's binary tensor
 * extension both ways: the JSON header, then every input's raw bytes (`binary_data_size`), with
 * `Inference-Header-Content-Length`; outputs are asked for in binary and come back as views into the
 * response body. No tensor ever becomes a JSON number list on this path.
 */

export interface TritonHttpClientOptions {
  /** Connections kept open to the server. @defaultValue 32 */
  connections?: number;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface OutputHeader {
  name?: unknown;
  datatype?: unknown;
  shape?: unknown;
  data?: unknown;
  parameters?: { binary_data_size?: unknown };
}

function header(headers: Reply['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The outputs of a KServe-v2 response body, binary or JSON (binary ones are views into `body`). */
export function decodeInferResponse(body: Buffer, headerLength: number | undefined, endpoint: string): Tensor[] {
  const end = headerLength ?? body.length;
  let parsed: { outputs?: unknown };
  try {
    parsed = JSON.parse(body.toString('utf8', 0, end)) as { outputs?: unknown };
  } catch (err) {
    throw new InferneoError(ErrorCode.INTERNAL, `Triton ${endpoint} sent a malformed inference response: ${(err as Error).message}`);
  }
  const outputs = Array.isArray(parsed.outputs) ? (parsed.outputs as OutputHeader[]) : [];
  let offset = end;
  return outputs.map((o) => {
    const { name, datatype, shape } = o;
    if (typeof name !== 'string' || !isDatatype(datatype) || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d))) {
      throw new InferneoError(ErrorCode.INTERNAL, `Triton ${endpoint} sent a malformed output tensor: ${JSON.stringify({ name, datatype, shape })}`);
    }
    const size = o.parameters?.binary_data_size;
    if (size === undefined) return { name, datatype, shape: shape as number[], data: jsonDataToBuffer(datatype, shape as number[], o.data, `output '${name}'`) };
    if (typeof size !== 'number' || offset + size > body.length) {
      throw new InferneoError(ErrorCode.INTERNAL, `Triton ${endpoint} sent output '${name}' with binary_data_size ${String(size)} beyond the body`);
    }
    const data = body.subarray(offset, offset + size);
    offset += size;
    return { name, datatype, shape: shape as number[], data };
  });
}

/** The request body of an inference call in the binary extension: JSON header, then the inputs' bytes. */
export function encodeInferRequest(call: TritonInferCall): { body: Buffer; headerLength: number } {
  const head: Record<string, unknown> = {
    inputs: call.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.data.length } })),
  };
  if (call.outputs.length > 0) head['outputs'] = call.outputs.map((name) => ({ name, parameters: { binary_data: true } }));
  else head['parameters'] = { binary_data_output: true };
  const json = Buffer.from(JSON.stringify(head));
  return { body: Buffer.concat([json, ...call.inputs.map((t) => t.data)]), headerLength: json.length };
}

export class TritonHttpClient implements TritonClient {
  readonly endpoint: string;
  private readonly pool: Pool;
  private closed = false;

  constructor(endpoint: string, options: TritonHttpClientOptions = {}) {
    this.endpoint = endpoint;
    this.pool = new Pool(endpoint, { connections: options.connections ?? 32, keepAliveTimeout: 30_000 });
  }

  async serverReady(timeoutMs: number): Promise<boolean> {
    const reply = await this.request('GET', '/v2/health/ready', undefined, {}, timeoutMs);
    return reply.status === 200;
  }

  async repositoryIndex(timeoutMs: number): Promise<TritonIndexEntry[]> {
    const rows = await this.json('POST', '/v2/repository/index', '{}', timeoutMs);
    return Array.isArray(rows) ? (rows as TritonIndexEntry[]) : [];
  }

  async modelConfig(model: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return (await this.json('GET', `/v2/models/${encodeURIComponent(model)}/config`, undefined, timeoutMs)) as Record<string, unknown>;
  }

  async loadModel(model: string, config: Record<string, unknown> | undefined, timeoutMs: number): Promise<void> {
    const body = config === undefined ? '{}' : JSON.stringify({ parameters: { config: JSON.stringify(config) } });
    await this.json('POST', `/v2/repository/models/${encodeURIComponent(model)}/load`, body, timeoutMs);
  }

  async unloadModel(model: string, timeoutMs: number): Promise<void> {
    await this.json('POST', `/v2/repository/models/${encodeURIComponent(model)}/unload`, '{}', timeoutMs);
  }

  async infer(model: string, version: string, call: TritonInferCall, timeoutMs: number): Promise<Tensor[]> {
    const { body, headerLength } = encodeInferRequest(call);
    const reply = await this.request(
      'POST',
      `/v2/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}/infer`,
      body,
      { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) },
      timeoutMs,
    );
    if (reply.status !== 200) throw tritonHttpError(reply.status, reply.body, this.endpoint);
    const length = header(reply.headers, 'inference-header-content-length');
    return decodeInferResponse(reply.body, length === undefined ? undefined : Number(length), this.endpoint);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }

  private async json(method: string, path: string, body: string | undefined, timeoutMs: number): Promise<unknown> {
    const reply = await this.request(method, path, body, body === undefined ? {} : { 'content-type': 'application/json' }, timeoutMs);
    if (reply.status >= 400) throw tritonHttpError(reply.status, reply.body, this.endpoint);
    if (reply.body.length === 0) return undefined;
    try {
      return JSON.parse(reply.body.toString('utf8'));
    } catch {
      throw new InferneoError(ErrorCode.INTERNAL, `Triton ${this.endpoint} answered ${method} ${path} with malformed JSON`);
    }
  }

  private async request(method: string, path: string, body: string | Buffer | undefined, headers: Record<string, string>, timeoutMs: number): Promise<Reply> {
    try {
      const res = await this.pool.request({
        method: method as 'GET' | 'POST',
        path,
        headers,
        body: body ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const data = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body: data };
    } catch (err) {
      throw tritonTransportError(err, this.endpoint, timeoutMs);
    }
  }
}
