import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError, MethodNotAllowedError, NotFoundError } from '../errors.js';
import { parseInferRequest } from '../protocol/infer-request.js';
import { encodeInferResponse } from '../protocol/infer-response.js';
import { ARM_HEADER } from '../routing/router.js';
import { readBody } from './http-body.js';
import { emptyReply, type Handler, jsonReply, type Reply, type Router } from './http-server.js';
import { armOf, type InferenceService } from './inference-service.js';

/**
 * The KServe-v2 HTTP API with Triton's extensions (model repository, model configuration, binary
 * tensor data), so that `tritonclient` and `perf_analyzer` work against Inferneo unchanged. This is
 * the HTTP adapter of the InferenceService: paths and bodies in, replies out; what a request does
 * is decided there, the same as for gRPC.
 */

export { EXTENSIONS, SERVER_NAME, SERVER_VERSION } from './inference-service.js';

export interface V2ApiOptions {
  /** The transport-neutral data plane this API exposes over HTTP. */
  service: InferenceService;
  /** Largest request body accepted. */
  maxRequestBytes: number;
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

function header(req: IncomingMessage): (name: string) => string | undefined {
  return (name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}

export function createV2Router(options: V2ApiOptions): Router {
  const { service } = options;
  const limit = options.maxRequestBytes;

  const serverMetadata: Handler = () => jsonReply(service.serverMetadata());
  const live: Handler = () => emptyReply(service.isLive() ? 200 : 503);
  const ready: Handler = () => emptyReply(service.isReady() ? 200 : 503);

  const metadata: Handler = (_req, [model, version]) => jsonReply(service.modelMetadata(model!, version));

  // Triton answers 200 for a ready model and 400 otherwise, with no body; clients check the status.
  const modelReady: Handler = (_req, [name, version]) => emptyReply(service.isModelReady(name!, version) ? 200 : 400);

  const config: Handler = (_req, [model, version]) => jsonReply(service.modelConfig(model!, version).json);

  const statistics: Handler = (_req, [model, version]) => jsonReply({ model_stats: service.statistics(model, version) });

  const infer: Handler = async (req, [name, version], signal): Promise<Reply> => {
    const target = service.resolve(name!, version, header(req));
    const body = await readBody(req, limit);
    const rawLength = req.headers['inference-header-content-length'];
    const headerLength = rawLength === undefined ? undefined : Number(rawLength);
    const request = parseInferRequest(body, headerLength);
    const outputs = await service.infer(target, request, signal);
    const encoded = encodeInferResponse(
      { modelName: target.model, modelVersion: target.version, ...(request.id !== undefined ? { id: request.id } : {}), outputs },
      request.outputs,
      request.binaryOutputs,
    );
    const headers: Record<string, string | number> = { [ARM_HEADER]: armOf(target) };
    if (encoded.headerLength === undefined) headers['content-type'] = 'application/json';
    else {
      headers['content-type'] = 'application/octet-stream';
      headers['inference-header-content-length'] = encoded.headerLength;
    }
    return { status: 200, body: encoded.body, headers };
  };

  const repositoryIndex: Handler = async (req) => {
    const body = await readJsonObject(req, limit);
    if (body['ready'] !== undefined && typeof body['ready'] !== 'boolean') {
      throw new InvalidArgumentError(`'ready' must be true or false`);
    }
    return jsonReply(await service.repositoryIndex(body['ready'] === true));
  };

  const repositoryLoad: Handler = async (req, [model]) => {
    const body = await readJsonObject(req, limit);
    const params = body['parameters'];
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      throw new InvalidArgumentError(`'parameters' must be an object`);
    }
    await service.loadModel(model!, params === undefined ? [] : Object.keys(params));
    return emptyReply(200);
  };

  const repositoryUnload: Handler = async (req, [model]) => {
    await readJsonObject(req, limit);
    await service.unloadModel(model!);
    return emptyReply(200);
  };

  // Routes keyed by shape; each maps a method to its handler.
  type Methods = Partial<Record<'GET' | 'POST', Handler>>;
  const modelRoutes = new Map<string, Methods>([
    ['', { GET: metadata }],
    ['ready', { GET: modelReady }],
    ['config', { GET: config }],
    ['infer', { POST: infer }],
    ['stats', { GET: statistics }],
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
    if (s[1] === 'models' && s[2] === 'stats' && s.length === 3) return pick({ GET: statistics }, method, [], what);
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
