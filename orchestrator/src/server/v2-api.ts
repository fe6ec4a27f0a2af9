import type { IncomingMessage } from 'node:http';
import type { Backend } from '../backends/backend.js';
import { ErrorCode, InferneoError, InvalidArgumentError, MethodNotAllowedError, NotFoundError } from '../errors.js';
import { parseInferRequest } from '../protocol/infer-request.js';
import { encodeInferResponse } from '../protocol/infer-response.js';
import { validateInferRequest } from '../registry/input-validation.js';
import { metadataShape, type ModelConfig } from '../registry/model-config.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import { readBody } from './http-body.js';
import { emptyReply, type Handler, jsonReply, type Reply, type Router } from './http-server.js';

/**
 * The KServe-v2 HTTP API with Triton's extensions (model repository, model configuration, binary
 * tensor data), so that `tritonclient` and `perf_analyzer` work against Inferneo unchanged.
 */

export const SERVER_NAME = 'inferneo';
export const SERVER_VERSION = '0.1.0';
export const EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'parameters'];

export interface V2ApiOptions {
  registry: ModelRegistry;
  backend: Backend;
  /** Whether the server as a whole is ready (dependencies up, start-up models loaded). */
  isReady: () => boolean;
  /** Largest request body accepted. */
  maxRequestBytes: number;
}

function modelMetadata(config: ModelConfig, versions: string[]): unknown {
  const tensor = (t: ModelConfig['input'][number]): unknown => ({ name: t.name, datatype: t.datatype, shape: metadataShape(config, t) });
  return {
    name: config.name,
    versions,
    platform: config.platform !== '' ? config.platform : config.backend,
    inputs: config.input.map(tensor),
    outputs: config.output.map(tensor),
  };
}

async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit);
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`malformed JSON body: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError('request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export function createV2Router(options: V2ApiOptions): Router {
  const { registry, backend } = options;
  const limit = options.maxRequestBytes;

  const serverMetadata: Handler = () => jsonReply({ name: SERVER_NAME, version: SERVER_VERSION, extensions: EXTENSIONS });
  const live: Handler = () => emptyReply(200);
  const ready: Handler = () => emptyReply(options.isReady() ? 200 : 503);

  const metadata: Handler = (_req, [model, version]) => {
    const record = registry.model(model!);
    if (record.config === undefined) throw new NotFoundError(`model '${model}' is not available: ${record.error ?? 'no config'}`);
    if (version !== undefined) registry.version(model!, version);
    return jsonReply(modelMetadata(record.config, version !== undefined ? [version] : [...record.versions.keys()]));
  };

  const modelReady: Handler = (_req, [model, version]) => {
    registry.model(model!);
    if (version !== undefined) registry.version(model!, version);
    // Triton answers 200 for a ready model and 400 otherwise, with no body; clients check the status.
    return emptyReply(registry.isReady(model!, version) ? 200 : 400);
  };

  const config: Handler = (_req, [model, version]) => {
    const record = registry.model(model!);
    if (version !== undefined) registry.version(model!, version);
    if (record.config === undefined) throw new NotFoundError(`model '${model}' is not available: ${record.error ?? 'no config'}`);
    return jsonReply(record.config.json);
  };

  const infer: Handler = async (req, [model, version]): Promise<Reply> => {
    const target = registry.resolve(model!, version);
    const body = await readBody(req, limit);
    const rawLength = req.headers['inference-header-content-length'];
    const headerLength = rawLength === undefined ? undefined : Number(rawLength);
    const request = parseInferRequest(body, headerLength);
    validateInferRequest(target.model.config, request);
    const [response] = await backend.infer(model!, target.version.version, [
      { inputs: request.inputs, outputs: request.outputs.map((o) => o.name) },
    ]);
    if (response === undefined) throw new InferneoError(ErrorCode.INTERNAL, 'the backend returned no response');
    if ('error' in response) throw response.error;
    const encoded = encodeInferResponse(
      {
        modelName: model!,
        modelVersion: target.version.version,
        ...(request.id !== undefined ? { id: request.id } : {}),
        outputs: response.outputs,
      },
      request.outputs,
      request.binaryOutputs,
    );
    if (encoded.headerLength === undefined) {
      return { status: 200, body: encoded.body, headers: { 'content-type': 'application/json' } };
    }
    return {
      status: 200,
      body: encoded.body,
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': encoded.headerLength },
    };
  };

  const repositoryIndex: Handler = async (req) => {
    const body = await readJsonObject(req, limit);
    if (body['ready'] !== undefined && typeof body['ready'] !== 'boolean') {
      throw new InvalidArgumentError(`'ready' must be true or false`);
    }
    await registry.refresh();
    return jsonReply(registry.index(body['ready'] === true));
  };

  const repositoryLoad: Handler = async (req, [model]) => {
    const body = await readJsonObject(req, limit);
    const params = body['parameters'];
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      throw new InvalidArgumentError(`'parameters' must be an object`);
    }
    if (params !== undefined && ('config' in params || Object.keys(params).some((k) => k.startsWith('file:')))) {
      throw new InvalidArgumentError('loading with a config or file override is not supported yet; change the model repository instead');
    }
    await registry.loadModel(model!);
    return emptyReply(200);
  };

  const repositoryUnload: Handler = async (req, [model]) => {
    await readJsonObject(req, limit);
    await registry.unloadModel(model!);
    return emptyReply(200);
  };

  // Routes keyed by shape; each maps a method to its handler.
  type Methods = Partial<Record<'GET' | 'POST', Handler>>;
  const modelRoutes = new Map<string, Methods>([
    ['', { GET: metadata }],
    ['ready', { GET: modelReady }],
    ['config', { GET: config }],
    ['infer', { POST: infer }],
  ]);

  const pick = (methods: Methods | undefined, method: string, params: string[], what: string): ReturnType<Router> => {
    if (methods === undefined) return new NotFoundError(`no such endpoint: ${what}`);
    const handler = methods[method as 'GET' | 'POST'];
    if (handler === undefined) {
      return new MethodNotAllowedError(`${method} is not allowed on ${what}; use ${Object.keys(methods).join(' or ')}`);
    }
    return { handler, params };
  };

  return (method, s) => {
    const what = '/' + s.join('/');
    if (s[0] !== 'v2') return new NotFoundError(`no such endpoint: ${what}`);
    if (s.length === 1) return pick({ GET: serverMetadata }, method, [], what);
    if (s[1] === 'health' && s.length === 3) {
      return pick(s[2] === 'live' ? { GET: live } : s[2] === 'ready' ? { GET: ready } : undefined, method, [], what);
    }
    if (s[1] === 'models' && s.length >= 3) {
      const model = s[2]!;
      if (s[3] === 'versions') {
        if (s.length < 5 || s.length > 6) return new NotFoundError(`no such endpoint: ${what}`);
        return pick(modelRoutes.get(s[5] ?? ''), method, [model, s[4]!], what);
      }
      if (s.length > 4) return new NotFoundError(`no such endpoint: ${what}`);
      return pick(modelRoutes.get(s[3] ?? ''), method, [model], what);
    }
    if (s[1] === 'repository') {
      if (s[2] === 'index' && s.length === 3) return pick({ POST: repositoryIndex }, method, [], what);
      if (s[2] === 'models' && s.length === 5) {
        const action = s[4] === 'load' ? repositoryLoad : s[4] === 'unload' ? repositoryUnload : undefined;
        return pick(action === undefined ? undefined : { POST: action }, method, [s[3]!], what);
      }
    }
    return new NotFoundError(`no such endpoint: ${what}`);
  };
}
