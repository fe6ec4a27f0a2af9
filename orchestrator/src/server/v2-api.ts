import type { IncomingMessage } from 'node:http';
import { httpStatusOf, InferneoError, InvalidArgumentError, MethodNotAllowedError, NotFoundError, toInferneoError } from '../errors.js';
import { type InferRequest, parseInferRequest } from '../protocol/infer-request.js';
import { encodeInferResponse } from '../protocol/infer-response.js';
import { validateInferRequest } from '../registry/input-validation.js';
import { metadataShape, type ModelConfig } from '../registry/model-config.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { Router as TrafficRouter, Target } from '../routing/router.js';
import type { InferenceStats } from '../scheduling/inference-stats.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';
import type { ScheduleOptions, Scheduler } from '../scheduling/scheduler.js';
import { readBody } from './http-body.js';
import { emptyReply, type Handler, jsonReply, type Reply, type Router } from './http-server.js';

/**
 * The KServe-v2 HTTP API with Triton's extensions (model repository, model configuration, binary
 * tensor data), so that `tritonclient` and `perf_analyzer` work against Inferneo unchanged.
 */

export const SERVER_NAME = 'inferneo';
export const SERVER_VERSION = '0.1.0';
export const EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'parameters', 'statistics', 'schedule_policy'];

/** `parameters.priority` and `parameters.timeout` (µs) of a request, as Triton takes them. */
function schedulingParameters(request: InferRequest, signal?: CancelSignal): ScheduleOptions {
  const out: ScheduleOptions = {};
  for (const name of ['priority', 'timeout'] as const) {
    const value = request.parameters[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`request parameter '${name}' must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    if (name === 'priority') out.priority = value;
    else out.timeoutUs = value;
  }
  if (signal !== undefined) out.signal = signal;
  return out;
}

export interface V2ApiOptions {
  registry: ModelRegistry;
  router: TrafficRouter;
  scheduler: Scheduler;
  stats: InferenceStats;
  /** Shadow requests in flight at most; more are dropped rather than let mirroring overload anyone. @defaultValue 64 */
  maxShadowInflight?: number;
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

function header(req: IncomingMessage): (name: string) => string | undefined {
  return (name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}

export function createV2Router(options: V2ApiOptions): Router {
  const { registry, scheduler, router } = options;
  const limit = options.maxRequestBytes;
  const maxShadow = options.maxShadowInflight ?? 64;
  let shadowInflight = 0;

  /** The config that describes `name`: the model's own, or for a route, its heaviest arm's under the route's name. */
  const configOf = (name: string, version?: string): { config: ModelConfig; versions: string[] } => {
    const route = version === undefined ? router.find(name) : undefined;
    if (route !== undefined) {
      const main = [...route.arms].sort((a, b) => b.weight - a.weight)[0]!;
      const config = registry.model(main.model).config;
      const versions = [...new Set(route.arms.filter((a) => a.model === main.model).map((a) => a.version))];
      return { config: { ...config, name, json: { ...config.json, name } }, versions };
    }
    const model = registry.model(name);
    if (version !== undefined) registry.version(name, version);
    return { config: model.config, versions: version !== undefined ? [version] : registry.versions(name).map((v) => v.version) };
  };

  const serverMetadata: Handler = () => jsonReply({ name: SERVER_NAME, version: SERVER_VERSION, extensions: EXTENSIONS });
  const live: Handler = () => emptyReply(200);
  const ready: Handler = () => emptyReply(options.isReady() ? 200 : 503);

  const metadata: Handler = (_req, [model, version]) => {
    const { config, versions } = configOf(model!, version);
    return jsonReply(modelMetadata(config, versions));
  };

  const modelReady: Handler = (_req, [name, version]) => {
    const route = version === undefined ? router.find(name!) : undefined;
    if (route === undefined) configOf(name!, version);
    const ready = route !== undefined ? route.arms.some((a) => a.weight > 0 && registry.isReady(a.model, a.version)) : registry.isReady(name!, version);
    // Triton answers 200 for a ready model and 400 otherwise, with no body; clients check the status.
    return emptyReply(ready ? 200 : 400);
  };

  const config: Handler = (_req, [model, version]) => jsonReply(configOf(model!, version).config.json);

  const statistics: Handler = (_req, [model, version]) => {
    const names = model === undefined ? registry.models().map((m) => m.name) : [model];
    const stats = names.flatMap((m) => {
      const versions = version !== undefined ? [registry.version(m, version).version] : registry.versions(m).map((v) => v.version);
      return options.stats.statistics(m, versions);
    });
    return jsonReply({ model_stats: stats });
  };

  /** Mirrors a request to a route's shadow: never awaited by the client, never failing it. */
  const mirror = (routeName: string, request: InferRequest): void => {
    const shadow = router.shadowTarget(routeName);
    if (shadow === undefined || shadowInflight >= maxShadow) return;
    shadowInflight++;
    void (async () => {
      let ok = false;
      try {
        const shadowConfig = registry.model(shadow.model).config;
        validateInferRequest(shadowConfig, request);
        const lease = await registry.acquire(shadow.model, shadow.version);
        try {
          await scheduler.infer(shadow.model, shadow.version, shadowConfig, { inputs: request.inputs, outputs: request.outputs.map((o) => o.name) });
          ok = true;
        } finally {
          lease.release();
        }
      } catch {
        ok = false;
      } finally {
        shadowInflight--;
        router.stats.recordShadow(routeName, shadow.model, shadow.version, ok);
      }
    })();
  };

  const infer: Handler = async (req, [name, version], signal): Promise<Reply> => {
    const target: Target = router.resolve(name!, version, header(req));
    const body = await readBody(req, limit);
    const rawLength = req.headers['inference-header-content-length'];
    const headerLength = rawLength === undefined ? undefined : Number(rawLength);
    const request = parseInferRequest(body, headerLength);
    const config = registry.model(target.model).config;
    validateInferRequest(config, request);
    const scheduling = schedulingParameters(request, signal);
    const started = performance.now();
    let failure: InferneoError | undefined;
    try {
      const lease = await registry.acquire(target.model, target.version);
      let outputs;
      try {
        outputs = await scheduler.infer(target.model, target.version, config, { inputs: request.inputs, outputs: request.outputs.map((o) => o.name) }, scheduling);
      } finally {
        lease.release();
      }
      const encoded = encodeInferResponse(
        { modelName: target.model, modelVersion: target.version, ...(request.id !== undefined ? { id: request.id } : {}), outputs },
        request.outputs,
        request.binaryOutputs,
      );
      const headers: Record<string, string | number> = { 'x-inferneo-arm': target.arm ?? `${target.model}-v${target.version}` };
      if (encoded.headerLength === undefined) headers['content-type'] = 'application/json';
      else {
        headers['content-type'] = 'application/octet-stream';
        headers['inference-header-content-length'] = encoded.headerLength;
      }
      return { status: 200, body: encoded.body, headers };
    } catch (err) {
      failure = toInferneoError(err);
      throw failure;
    } finally {
      if (target.route !== undefined) {
        // An arm is charged with server-side failures only; a bad request is the caller's.
        if (failure === undefined || httpStatusOf(failure.code) >= 500) {
          router.stats.record(target.route, target.arm!, target.model, target.version, failure === undefined, (performance.now() - started) / 1000);
        }
        mirror(target.route, request);
      }
    }
  };

  const repositoryIndex: Handler = async (req) => {
    const body = await readJsonObject(req, limit);
    if (body['ready'] !== undefined && typeof body['ready'] !== 'boolean') {
      throw new InvalidArgumentError(`'ready' must be true or false`);
    }
    await registry.syncRepository();
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
