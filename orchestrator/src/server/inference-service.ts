import { httpStatusOf, type InferneoError, InvalidArgumentError, toInferneoError } from '../errors.js';
import type { Datatype } from '../protocol/datatypes.js';
import type { InferRequest } from '../protocol/infer-request.js';
import type { Tensor } from '../protocol/tensor.js';
import { validateInferRequest } from '../registry/input-validation.js';
import { metadataShape, type ModelConfig } from '../registry/model-config.js';
import type { IndexEntry, ModelRegistry } from '../registry/model-registry.js';
import type { Router as TrafficRouter, Target } from '../routing/router.js';
import type { CancelSignal } from '../scheduling/cancel-signal.js';
import type { InferenceStats, ModelStatistics } from '../scheduling/inference-stats.js';
import type { ScheduleOptions, Scheduler } from '../scheduling/scheduler.js';

/**
 * The data plane, independent of its transport: what the KServe-v2 HTTP API (v2-api.ts) and the
 * Triton-compatible gRPC service (grpc-server.ts) both serve. Routes, sticky keys, header rules,
 * shadow mirroring, per-arm statistics, scheduling parameters and leases are applied here, once,
 * so that a request behaves the same whichever protocol carried it. Adapters decode the request,
 * call `resolve` then `infer`, and encode the result; failures are InferneoErrors that each adapter
 * maps to its own status (errors.ts).
 */

export const SERVER_NAME = 'inferneo';
export const SERVER_VERSION = '0.1.0';
export const EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'parameters', 'statistics', 'schedule_policy'];

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface InferenceServiceOptions {
  registry: ModelRegistry;
  router: TrafficRouter;
  scheduler: Scheduler;
  stats: InferenceStats;
  /** Shadow requests in flight at most; more are dropped rather than let mirroring overload anyone. @defaultValue 64 */
  maxShadowInflight?: number;
  /** Whether the server as a whole is ready (dependencies up, start-up models loaded). */
  isReady: () => boolean;
}

/** Looks up a request header (HTTP) or metadata entry (gRPC) by its lower-case name. */
export type HeaderLookup = (name: string) => string | undefined;

/** `parameters.priority` and `parameters.timeout` (µs) of a request, as Triton takes them. */
export function schedulingParameters(request: InferRequest, signal?: CancelSignal): ScheduleOptions {
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

/** The arm name a response reports in `x-inferneo-arm`: the route's arm, or `<model>-v<version>` without a route. */
export function armOf(target: Target): string {
  return target.arm ?? `${target.model}-v${target.version}`;
}

export class InferenceService {
  private readonly registry: ModelRegistry;
  private readonly router: TrafficRouter;
  private readonly scheduler: Scheduler;
  private readonly stats: InferenceStats;
  private readonly maxShadow: number;
  private shadowInflight = 0;

  constructor(private readonly options: InferenceServiceOptions) {
    this.registry = options.registry;
    this.router = options.router;
    this.scheduler = options.scheduler;
    this.stats = options.stats;
    this.maxShadow = options.maxShadowInflight ?? 64;
  }

  serverMetadata(): ServerMetadata {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: [...EXTENSIONS] };
  }

  isLive(): boolean {
    return true;
  }

  isReady(): boolean {
    return this.options.isReady();
  }

  /** The config that describes `name`: the model's own, or for a route, its heaviest arm's under the route's name. Throws NOT_FOUND. */
  describe(name: string, version?: string): { config: ModelConfig; versions: string[] } {
    const route = version === undefined ? this.router.find(name) : undefined;
    if (route !== undefined) {
      const main = [...route.arms].sort((a, b) => b.weight - a.weight)[0]!;
      const config = this.registry.model(main.model).config;
      const versions = [...new Set(route.arms.filter((a) => a.model === main.model).map((a) => a.version))];
      return { config: { ...config, name, json: { ...config.json, name } }, versions };
    }
    const model = this.registry.model(name);
    if (version !== undefined) this.registry.version(name, version);
    return { config: model.config, versions: version !== undefined ? [version] : this.registry.versions(name).map((v) => v.version) };
  }

  modelMetadata(name: string, version?: string): ModelMetadata {
    const { config, versions } = this.describe(name, version);
    const tensor = (t: ModelConfig['input'][number]): TensorMetadata => ({ name: t.name, datatype: t.datatype, shape: metadataShape(config, t) });
    return {
      name: config.name,
      versions,
      platform: config.platform !== '' ? config.platform : config.backend,
      inputs: config.input.map(tensor),
      outputs: config.output.map(tensor),
    };
  }

  modelConfig(name: string, version?: string): ModelConfig {
    return this.describe(name, version).config;
  }

  /** Whether a model (version) or a route can serve now. Throws NOT_FOUND for what does not exist. */
  isModelReady(name: string, version?: string): boolean {
    const route = version === undefined ? this.router.find(name) : undefined;
    if (route === undefined) {
      this.describe(name, version);
      return this.registry.isAvailable(name, version);
    }
    return route.arms.some((a) => a.weight > 0 && this.registry.isAvailable(a.model, a.version));
  }

  /** Triton's statistics of one model (or every model), one entry per version. */
  statistics(name?: string, version?: string): ModelStatistics[] {
    const names = name === undefined ? this.registry.models().map((m) => m.name) : [name];
    return names.flatMap((m) => {
      const versions = version !== undefined ? [this.registry.version(m, version).version] : this.registry.versions(m).map((v) => v.version);
      return this.stats.statistics(m, versions);
    });
  }

  /**
   * Chooses the model version for a request to `name`: a version given explicitly bypasses any
   * split; a route picks an arm by `x-inferneo-arm`, its header rules, the sticky key
   * `x-inferneo-route-key` or its weights.
   */
  resolve(name: string, version: string | undefined, header: HeaderLookup): Target {
    return this.router.resolve(name, version, header);
  }

  /**
   * Runs a decoded request on the target `resolve` chose: validation against the model, the
   * request's priority and timeout, a lease on the version for as long as it runs, the route's
   * per-arm statistics and its shadow mirror. `signal` cancels the request while it is queued.
   */
  async infer(target: Target, request: InferRequest, signal?: CancelSignal): Promise<Tensor[]> {
    const config = this.registry.model(target.model).config;
    validateInferRequest(config, request);
    const scheduling = schedulingParameters(request, signal);
    const started = performance.now();
    let failure: InferneoError | undefined;
    try {
      const lease = await this.registry.acquire(target.model, target.version);
      try {
        return await this.scheduler.infer(target.model, target.version, config, { inputs: request.inputs, outputs: request.outputs.map((o) => o.name) }, scheduling);
      } finally {
        lease.release();
      }
    } catch (err) {
      failure = toInferneoError(err);
      throw failure;
    } finally {
      if (target.route !== undefined) {
        // An arm is charged with server-side failures only; a bad request is the caller's.
        if (failure === undefined || httpStatusOf(failure.code) >= 500) {
          this.router.stats.record(target.route, target.arm!, target.model, target.version, failure === undefined, (performance.now() - started) / 1000);
        }
        this.mirror(target.route, request);
      }
    }
  }

  async repositoryIndex(readyOnly: boolean): Promise<IndexEntry[]> {
    await this.registry.syncRepository();
    return this.registry.index(readyOnly);
  }

  /** Loads (or reloads) a model from the repository. `parameterNames` are the request's parameters; overrides are refused. */
  async loadModel(name: string, parameterNames: readonly string[] = []): Promise<void> {
    if (parameterNames.some((k) => k === 'config' || k.startsWith('file:'))) {
      throw new InvalidArgumentError('loading with a config or file override is not supported yet; change the model repository instead');
    }
    await this.registry.loadModel(name);
  }

  async unloadModel(name: string): Promise<void> {
    await this.registry.unloadModel(name);
  }

  /** Mirrors a request to a route's shadow: never awaited by the client, never failing it. */
  private mirror(routeName: string, request: InferRequest): void {
    const shadow = this.router.shadowTarget(routeName);
    if (shadow === undefined || this.shadowInflight >= this.maxShadow) return;
    this.shadowInflight++;
    void (async () => {
      let ok = false;
      try {
        const shadowConfig = this.registry.model(shadow.model).config;
        validateInferRequest(shadowConfig, request);
        const lease = await this.registry.acquire(shadow.model, shadow.version);
        try {
          await this.scheduler.infer(shadow.model, shadow.version, shadowConfig, { inputs: request.inputs, outputs: request.outputs.map((o) => o.name) });
          ok = true;
        } finally {
          lease.release();
        }
      } catch {
        ok = false;
      } finally {
        this.shadowInflight--;
        this.router.stats.recordShadow(routeName, shadow.model, shadow.version, ok);
      }
    })();
  }
}
