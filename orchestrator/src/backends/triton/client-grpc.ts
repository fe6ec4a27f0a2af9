import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ErrorCode, InferneoError } from '../../errors.js';
import { isDatatype } from '../../protocol/datatypes.js';
import { GRPC_SERVICE_NAME, protoDir } from '../../protocol/grpc-proto.js';
import type { Tensor } from '../../protocol/tensor.js';
import type { TritonClient, TritonIndexEntry, TritonInferCall } from './triton-client.js';
import { tritonGrpcError, tritonTransportError } from './triton-errors.js';

/**
 * Triton's GRPCInferenceService (`orchestrator/proto/grpc_service.proto`) as a TritonClient. Tensors
 * travel as `raw_input_contents` / `raw_output_contents` (raw little-endian bytes, BYTES as 4-byte
 * length-prefixed elements): the same layout as Inferneo's Tensor, so nothing is converted.
 *
 * The protocol is decoded here as protobuf's canonical JSON mapping would render it — no default
 * values, no oneof markers, 64-bit integers as numbers — because the model configuration read with
 * `ModelConfig` is handed back to Triton as a JSON load override and to the registry as Triton's
 * JSON config, exactly like the HTTP API's.
 */

export interface TritonGrpcClientOptions {
  /** Largest message sent or received. @defaultValue 256 MiB */
  maxMessageBytes?: number;
}

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: false, bytes: Buffer };

let clientClass: grpc.ServiceClientConstructor | undefined;

function clientConstructor(): grpc.ServiceClientConstructor {
  if (clientClass === undefined) {
    const definition = protoLoader.loadSync('grpc_service.proto', { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
    clientClass = grpc.makeClientConstructor(definition[GRPC_SERVICE_NAME] as grpc.ServiceDefinition, GRPC_SERVICE_NAME);
  }
  return clientClass;
}

type Callback = (err: grpc.ServiceError | null, response: unknown) => void;
type UnaryMethod = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => void;

interface OutputTensor {
  name?: string;
  datatype?: string;
  shape?: number[];
}

export class TritonGrpcClient implements TritonClient {
  readonly endpoint: string;
  private readonly client: grpc.Client;
  private closed = false;

  constructor(endpoint: string, options: TritonGrpcClientOptions = {}) {
    this.endpoint = endpoint;
    const max = options.maxMessageBytes ?? 256 * 1024 * 1024;
    const Client = clientConstructor();
    this.client = new Client(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': max,
      'grpc.max_receive_message_length': max,
      // A restarted Triton is found again within a second (grpc's default backoff grows to 2 minutes).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
  }

  async serverReady(timeoutMs: number): Promise<boolean> {
    const reply = (await this.unary('ServerReady', {}, timeoutMs)) as { ready?: boolean };
    return reply.ready === true;
  }

  async repositoryIndex(timeoutMs: number): Promise<TritonIndexEntry[]> {
    const reply = (await this.unary('RepositoryIndex', { repository_name: '', ready: false }, timeoutMs)) as { models?: TritonIndexEntry[] };
    return (reply.models ?? []).map((m) => {
      const row: TritonIndexEntry = { name: m.name };
      if (m.version !== undefined && m.version !== '') row.version = m.version;
      if (m.state !== undefined && m.state !== '') row.state = m.state;
      if (m.reason !== undefined && m.reason !== '') row.reason = m.reason;
      return row;
    });
  }

  async modelConfig(model: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const reply = (await this.unary('ModelConfig', { name: model, version: '' }, timeoutMs)) as { config?: Record<string, unknown> };
    return reply.config ?? { name: model };
  }

  async loadModel(model: string, config: Record<string, unknown> | undefined, timeoutMs: number): Promise<void> {
    const parameters = config === undefined ? {} : { config: { string_param: JSON.stringify(config) } };
    await this.unary('RepositoryModelLoad', { repository_name: '', model_name: model, parameters }, timeoutMs);
  }

  async unloadModel(model: string, timeoutMs: number): Promise<void> {
    await this.unary('RepositoryModelUnload', { repository_name: '', model_name: model, parameters: {} }, timeoutMs);
  }

  async infer(model: string, version: string, call: TritonInferCall, timeoutMs: number): Promise<Tensor[]> {
    const reply = (await this.unary(
      'ModelInfer',
      {
        model_name: model,
        model_version: version,
        inputs: call.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
        outputs: call.outputs.map((name) => ({ name })),
        raw_input_contents: call.inputs.map((t) => t.data),
      },
      timeoutMs,
    )) as { outputs?: OutputTensor[]; raw_output_contents?: Buffer[] };
    const raw = reply.raw_output_contents ?? [];
    return (reply.outputs ?? []).map((o, i) => {
      const data = raw[i];
      if (typeof o.name !== 'string' || !isDatatype(o.datatype) || data === undefined) {
        throw new InferneoError(ErrorCode.INTERNAL, `Triton ${this.endpoint} sent output ${i} (${String(o.name)}) without raw contents or with an unknown datatype`);
      }
      return { name: o.name, datatype: o.datatype, shape: (o.shape ?? []).map(Number), data };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private unary(method: string, request: object, timeoutMs: number): Promise<unknown> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method]!;
    return new Promise((resolve, reject) => {
      fn.call(this.client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err === null) resolve(response);
        else if (err.code === grpc.status.DEADLINE_EXCEEDED) reject(tritonTransportError({ code: 'ETIMEDOUT' }, this.endpoint, timeoutMs));
        else reject(tritonGrpcError(err.code, err.details, this.endpoint));
      });
    });
  }
}
