import * as grpc from '@grpc/grpc-js';
import { ErrorCode, grpcStatusOf, GrpcStatus, type InferneoError, InvalidArgumentError, toInferneoError, UnsupportedError } from '../errors.js';
import { parseGenerateRequest } from '../llm/generate-request.js';
import type { LlmService } from '../llm/llm-service.js';
import { encodeGeneratedPiece, FINAL_PARAMETER, generateRequestFromGrpc } from '../protocol/grpc-generate.js';
import { conformToMessage, inferenceServiceDefinition } from '../protocol/grpc-proto.js';
import {
  decodeModelInferRequest,
  encodeModelInferResponse,
  type GrpcInferParameter,
  type GrpcModelInferRequest,
  type GrpcModelInferResponse,
} from '../protocol/grpc-tensor.js';
import type { ModelConfig } from '../registry/model-config.js';
import { ARM_HEADER, type Target } from '../routing/router.js';
import { CancelSource, type CancelSignal } from '../scheduling/cancel-signal.js';
import { armOf, type HeaderLookup, type InferenceService } from './inference-service.js';

/**
 * The gRPC listener of the data plane: Triton's `inference.GRPCInferenceService`, so that
 * `tritonclient.grpc` and `perf_analyzer -i grpc` work against Inferneo unchanged. It is the gRPC
 * adapter of the InferenceService (routes, sticky keys from the `x-inferneo-route-key` and
 * `x-inferneo-arm` metadata, batching, statistics: all as over HTTP). Errors become gRPC statuses
 * through errors.ts; a cancelled call (client gone, deadline passed) cancels its queued request.
 * Decoupled (text-generation) models are served as Triton serves them: through ModelStreamInfer only,
 * by the LlmService (its admission, metrics and cancellation), one response per generated piece;
 * unary ModelInfer refuses them. Shared-memory, trace and log RPCs answer UNIMPLEMENTED.
 */

export interface GrpcServerOptions {
  /** Interface to listen on. */
  host: string;
  /** Port; 0 = any free port (`listen` returns the one bound). */
  port: number;
  service: InferenceService;
  /** Text generation, for ModelStreamInfer requests to decoupled models. */
  llm: LlmService;
  /** Largest request message accepted; larger ones get RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** Called for calls that fail with INTERNAL, so that bugs are logged with their stack. */
  onInternalError?: (err: InferneoError, method: string) => void;
  /** How long `close` lets calls in progress finish before cutting them. @defaultValue 5000 */
  shutdownTimeoutMs?: number;
}

const GrpcServerState = {
  IDLE: 'idle',
  LISTENING: 'listening',
  CLOSED: 'closed',
} as const;
type GrpcServerState = (typeof GrpcServerState)[keyof typeof GrpcServerState];

/** Optional string fields arrive as '' when unset; Inferneo's layers take undefined. */
function optional(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function required(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw new InvalidArgumentError(`'${field}' is required`);
  return value;
}

function metadataLookup(metadata: grpc.Metadata): HeaderLookup {
  return (name) => {
    if (name.endsWith('-bin')) return undefined;
    const value = metadata.get(name)[0];
    return typeof value === 'string' ? value : undefined;
  };
}

/** One message of a ModelStreamInfer stream. */
interface StreamReply {
  error_message: string;
  infer_response: GrpcModelInferResponse | Partial<GrpcModelInferResponse>;
}

type StreamWrite = (reply: StreamReply) => void;

function serviceError(err: InferneoError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set('inferneo-error-code', err.code);
  return { code: grpcStatusOf(err.code), details: err.message, metadata };
}

/**
 * Triton's ModelConfig message from the config as `GET .../config` renders it (Triton's field and
 * enum names already), conformed to the message's schema; fields of Triton's schema that
 * orchestrator/proto/model_config.proto leaves out are dropped.
 */
function configMessage(config: ModelConfig): Record<string, unknown> {
  return conformToMessage('inference.ModelConfig', { ...config.json, name: config.name });
}

export class GrpcServer {
  private readonly server: grpc.Server;
  private state: GrpcServerState = GrpcServerState.IDLE;
  private readonly service: InferenceService;

  constructor(private readonly options: GrpcServerOptions) {
    this.service = options.service;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': -1,
    });
    this.server.addService(inferenceServiceDefinition(), this.handlers());
  }

  async listen(): Promise<number> {
    if (this.state !== GrpcServerState.IDLE) throw new Error(`the gRPC server is ${this.state}`);
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${host}:${this.options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err !== null) reject(new Error(`cannot listen for gRPC on ${host}:${this.options.port}: ${err.message}`, { cause: err }));
        else resolve(bound);
      });
    });
    this.state = GrpcServerState.LISTENING;
    return port;
  }

  /** Stops accepting calls and lets calls in progress finish (for at most `shutdownTimeoutMs`). Idempotent. */
  async close(): Promise<void> {
    if (this.state === GrpcServerState.CLOSED) return;
    const wasListening = this.state === GrpcServerState.LISTENING;
    this.state = GrpcServerState.CLOSED;
    if (!wasListening) {
      this.server.forceShutdown();
      return;
    }
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, this.options.shutdownTimeoutMs ?? 5_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private fail(method: string, err: unknown): Partial<grpc.StatusObject> {
    const error = toInferneoError(err);
    if (error.code === ErrorCode.INTERNAL) this.options.onInternalError?.(error, method);
    return serviceError(error);
  }

  /** A unary handler from a function of the request; its result or error becomes the reply. */
  private unary<Req, Res>(method: string, fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let result: Promise<Res>;
      try {
        result = Promise.resolve(fn(call.request, call));
      } catch (err) {
        result = Promise.reject(err);
      }
      result.then(
        (value) => callback(null, value),
        (err: unknown) => callback(this.fail(method, err)),
      );
    };
  }

  private unimplemented(method: string): grpc.handleUnaryCall<unknown, unknown> {
    return (_call, callback) =>
      callback({ code: GrpcStatus.UNIMPLEMENTED, details: `${method} is not supported by Inferneo; send tensor data in the request (raw_input_contents)` });
  }

  /** The model version a request goes to: a route's arm (sticky key, `x-inferneo-arm`) or the model's. */
  private resolve(message: GrpcModelInferRequest, metadata: grpc.Metadata): Target {
    return this.service.resolve(required(message.model_name, 'model_name'), optional(message.model_version), metadataLookup(metadata));
  }

  /** One inference on a tensor model, as ModelInfer and each message of ModelStreamInfer run it. */
  private async inferOne(message: GrpcModelInferRequest, target: Target, signal: CancelSignal): Promise<GrpcModelInferResponse> {
    if (this.options.llm.isLlm(target.model)) {
      // Triton's words (grpc_server.cc), and where to go instead.
      throw new UnsupportedError(
        `ModelInfer RPC doesn't support models with decoupled transaction policy: '${target.model}' generates text; use ModelStreamInfer (tritonclient: start_stream and async_stream_infer)`,
      );
    }
    const request = decodeModelInferRequest(message);
    const outputs = await this.service.infer(target, request, signal);
    return encodeModelInferResponse({ modelName: target.model, modelVersion: target.version, ...(request.id !== undefined ? { id: request.id } : {}), outputs });
  }

  /**
   * One request of ModelStreamInfer to a decoupled model, generated by the LlmService. With `stream`
   * true every piece of text is a response with `triton_final_response` false, and the last one
   * says true: an extra empty response when the request asked for
   * `triton_enable_empty_final_response`, else the last piece itself (so each piece waits for the
   * next before it is sent). With `stream` false (the vLLM backend's default) one response carries
   * the whole text, the prompt first unless `exclude_input_in_output`. A failure after pieces went
   * out is thrown after the pieces held back, for the caller to answer in the stream.
   */
  private async generateOne(message: GrpcModelInferRequest, target: Target, signal: CancelSignal, write: StreamWrite): Promise<void> {
    const { body, emptyFinal } = generateRequestFromGrpc(decodeModelInferRequest(message));
    const parsed = parseGenerateRequest(body, target.model);
    const piece = (text: string | undefined, final: boolean): StreamReply => ({
      error_message: '',
      infer_response: encodeGeneratedPiece({ modelName: target.model, modelVersion: target.version, id: parsed.id ?? '', text, final }),
    });
    const events = this.options.llm.generate(target, parsed.request, signal);
    if (!parsed.stream) {
      let text = parsed.excludeInput ? '' : parsed.prompt;
      for await (const event of events) text += event.text;
      write(piece(text, true));
      return;
    }
    let held: string | undefined;
    try {
      for await (const event of events) {
        if (event.text === '') continue;
        if (emptyFinal) write(piece(event.text, false));
        else {
          if (held !== undefined) write(piece(held, false));
          held = event.text;
        }
      }
    } catch (err) {
      if (held !== undefined) write(piece(held, false));
      throw err;
    }
    // Nothing generated and no empty final asked for: still one response that ends the request.
    write(piece(emptyFinal ? undefined : held, true));
  }

  private modelInfer(): grpc.handleUnaryCall<GrpcModelInferRequest, GrpcModelInferResponse> {
    return (call, callback) => {
      const gone = new CancelSource();
      call.once('cancelled', () => gone.cancel());
      const run = async (): Promise<{ response: GrpcModelInferResponse; target: Target }> => {
        const target = this.resolve(call.request, call.metadata);
        return { response: await this.inferOne(call.request, target, gone), target };
      };
      run().then(
        ({ response, target }) => {
          if (call.cancelled) return;
          const headers = new grpc.Metadata();
          headers.set(ARM_HEADER, armOf(target));
          call.sendMetadata(headers);
          callback(null, response);
        },
        (err: unknown) => {
          if (!call.cancelled) callback(this.fail('ModelInfer', err));
        },
      );
    };
  }

  /**
   * Every request of the stream runs as it arrives (so they batch with each other and with other
   * clients' requests). A request to a tensor model gets one ModelStreamInferResponse, one to a
   * decoupled model one per generated piece (generateOne); responses go out in completion order,
   * each carrying its request's `id`. A failed request is answered in the stream (`error_message`)
   * and the stream goes on. The stream ends after the client half-closes and every request is
   * answered; a cancelled stream cancels what it still has queued and stops its generations.
   */
  private modelStreamInfer(): grpc.handleBidiStreamingCall<GrpcModelInferRequest, StreamReply> {
    return (call) => {
      const gone = new CancelSource();
      let inflight = 0;
      let halfClosed = false;
      let finished = false;
      const finish = (): void => {
        if (finished || !halfClosed || inflight > 0) return;
        finished = true;
        if (!call.cancelled) call.end();
      };
      const write: StreamWrite = (reply) => {
        if (!call.cancelled && !call.destroyed) call.write(reply);
      };
      call.once('cancelled', () => {
        finished = true;
        gone.cancel();
      });
      call.on('error', () => gone.cancel());
      call.on('data', (message: GrpcModelInferRequest) => {
        inflight++;
        const finalFlag: Record<string, GrpcInferParameter> = { [FINAL_PARAMETER]: { bool_param: true } };
        Promise.resolve()
          .then(async () => {
            const target = this.resolve(message, call.metadata);
            if (this.options.llm.isLlm(target.model)) return this.generateOne(message, target, gone, write);
            const response = await this.inferOne(message, target, gone);
            write({ error_message: '', infer_response: { ...response, parameters: { ...response.parameters, ...finalFlag } } });
          })
          .catch((err: unknown) => {
            const error = toInferneoError(err);
            if (error.code === ErrorCode.INTERNAL) this.options.onInternalError?.(error, 'ModelStreamInfer');
            write({
              error_message: error.message,
              infer_response: { model_name: message.model_name ?? '', model_version: message.model_version ?? '', id: message.id ?? '', parameters: finalFlag },
            });
          })
          .finally(() => {
            inflight--;
            finish();
          });
      });
      call.on('end', () => {
        halfClosed = true;
        finish();
      });
    };
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const s = this.service;
    type Named = { name?: string; version?: string };
    return {
      ServerLive: this.unary('ServerLive', () => ({ live: s.isLive() })),
      ServerReady: this.unary('ServerReady', () => ({ ready: s.isReady() })),
      ModelReady: this.unary('ModelReady', (r: Named) => {
        // Triton's gRPC ModelReady answers `ready: false` for a model it does not know rather than an error.
        try {
          return { ready: s.isModelReady(required(r.name, 'name'), optional(r.version)) };
        } catch (err) {
          if (toInferneoError(err).code === ErrorCode.NOT_FOUND) return { ready: false };
          throw err;
        }
      }),
      ServerMetadata: this.unary('ServerMetadata', () => s.serverMetadata()),
      ModelMetadata: this.unary('ModelMetadata', (r: Named) => s.modelMetadata(required(r.name, 'name'), optional(r.version))),
      ModelInfer: this.modelInfer(),
      ModelStreamInfer: this.modelStreamInfer(),
      ModelConfig: this.unary('ModelConfig', (r: Named) => ({ config: configMessage(s.modelConfig(required(r.name, 'name'), optional(r.version))) })),
      ModelStatistics: this.unary('ModelStatistics', (r: Named) => ({ model_stats: s.statistics(optional(r.name), optional(r.version)) })),
      RepositoryIndex: this.unary('RepositoryIndex', async (r: { ready?: boolean }) => ({ models: await s.repositoryIndex(r.ready === true) })),
      RepositoryModelLoad: this.unary('RepositoryModelLoad', async (r: { model_name?: string; parameters?: Record<string, unknown> }) => {
        await s.loadModel(required(r.model_name, 'model_name'), Object.keys(r.parameters ?? {}));
        return {};
      }),
      RepositoryModelUnload: this.unary('RepositoryModelUnload', async (r: { model_name?: string }) => {
        await s.unloadModel(required(r.model_name, 'model_name'));
        return {};
      }),
      SystemSharedMemoryStatus: this.unimplemented('SystemSharedMemoryStatus'),
      SystemSharedMemoryRegister: this.unimplemented('SystemSharedMemoryRegister'),
      SystemSharedMemoryUnregister: this.unimplemented('SystemSharedMemoryUnregister'),
      CudaSharedMemoryStatus: this.unimplemented('CudaSharedMemoryStatus'),
      CudaSharedMemoryRegister: this.unimplemented('CudaSharedMemoryRegister'),
      CudaSharedMemoryUnregister: this.unimplemented('CudaSharedMemoryUnregister'),
      TraceSetting: this.unimplemented('TraceSetting'),
      LogSettings: this.unimplemented('LogSettings'),
    };
  }
}
