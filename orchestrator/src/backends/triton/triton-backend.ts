import { EventEmitter } from 'node:events';
import {
  ErrorCode,
  InferneoError,
  LoadFailedError,
  ModelNotReadyError,
  NotFoundError,
  toInferneoError,
  UnavailableError,
} from '../../errors.js';
import { datatypeFromConfigType } from '../../protocol/datatypes.js';
import type { Tensor } from '../../protocol/tensor.js';
import { type Clock, systemClock } from '../../scheduling/clock.js';
import type { Backend, BackendRequest, BackendResponse, LoadedVersion, RemoteModel, TensorSignature } from '../backend.js';
import { type MergedBatch, mergeRequests, splitOutputs } from '../batch-merge.js';
import { backoffDelay, sleep } from './backoff.js';
import type { CircuitState } from './circuit-breaker.js';
import { TritonGrpcClient } from './client-grpc.js';
import { TritonHttpClient } from './client-http.js';
import { type EndpointPicker, LeastOutstandingPicker } from './endpoint-picker.js';
import type { TritonClient, TritonIndexEntry, TritonInferCall } from './triton-client.js';
import { TritonEndpoint } from './triton-endpoint.js';
import { isEndpointFailure, isRetryable, oneLine } from './triton-errors.js';
import { type ResolvedTritonOptions, resolveTritonOptions, type TritonBackendOptions } from './triton-options.js';

/**
 * Serves model versions on NVIDIA Triton servers, through Triton's model-control (explicit mode)
 * and inference APIs over HTTP or gRPC.
 *
 * Versions: Inferneo version "N" is Triton version N. Triton loads a model as a whole, so the
 * backend keeps, per model, the set of versions that should be loaded ("wanted") and loads the model
 * with its own configuration plus `version_policy: specific` naming exactly that set; loading or
 * unloading one version reloads the model with the new set (Triton keeps the other versions
 * serving meanwhile). The configuration is learnt from Triton (`GET /v2/models/{m}/config`) the
 * first time, so the model needs no copy in the orchestrator's repository.
 *
 * Batches: the requests of a batch go to Triton as ONE request, their rows concatenated along the
 * first dimension, and the outputs are split back per request.
 *
 * Failures: each endpoint has a circuit breaker; connection errors, UNAVAILABLE and timeouts count
 * against it, and UNAVAILABLE/connection errors are retried with exponential backoff (bounded),
 * possibly on another endpoint. While an endpoint's circuit is open its calls fail fast with 503;
 * after the cool-down a probe checks the server and loads again whatever it lost (a restarted
 * Triton in explicit mode has nothing loaded), then closes the circuit.
 */

export interface TritonBackendEvents {
  /** An endpoint's circuit changed state (reason: the failure that opened it). */
  circuit: [endpoint: string, state: CircuitState, reason: string | undefined];
}

export interface TritonBackendDeps {
  /** @defaultValue the monotonic clock */
  clock?: Clock;
  /** Backoff jitter, a number in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Makes the client of one endpoint. @defaultValue TritonHttpClient or TritonGrpcClient, per `protocol` */
  createClient?: (endpoint: string, options: ResolvedTritonOptions) => TritonClient;
  /** Picks among healthy endpoints holding the version. @defaultValue LeastOutstandingPicker */
  picker?: EndpointPicker;
  /** @defaultValue console.error with a prefix */
  log?: (message: string) => void;
}

type VersionStates = Map<string, { state?: string; reason?: string }>;

function defaultClient(endpoint: string, options: ResolvedTritonOptions): TritonClient {
  return options.protocol === 'grpc' ? new TritonGrpcClient(endpoint) : new TritonHttpClient(endpoint, { connections: options.connections });
}

function byNumber(a: string, b: string): number {
  return Number(a) - Number(b);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v) => b.includes(v));
}

function readyIn(states: VersionStates): string[] {
  return [...states].filter(([, s]) => s.state === 'READY').map(([v]) => v).sort(byNumber);
}

function signatures(list: unknown, maxBatchSize: number): TensorSignature[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((t: Record<string, unknown>) => {
    const datatype = datatypeFromConfigType(String(t['data_type']));
    if (typeof t['name'] !== 'string' || datatype === undefined) return [];
    const dims = (Array.isArray(t['dims']) ? t['dims'] : []).map(Number);
    return [{ name: t['name'], datatype, shape: maxBatchSize > 0 ? [-1, ...dims] : dims }];
  });
}

export class TritonBackend extends EventEmitter<TritonBackendEvents> implements Backend {
  readonly name = 'triton';
  readonly options: ResolvedTritonOptions;
  private readonly endpoints: TritonEndpoint[];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly picker: EndpointPicker;
  private readonly log: (message: string) => void;
  /** Versions that should be loaded, by model. */
  private readonly wanted = new Map<string, Set<string>>();
  /** Triton's configuration of each model (the base of every load), learnt from Triton. */
  private readonly configs = new Map<string, Record<string, unknown>>();
  private closed = false;

  constructor(options: TritonBackendOptions, deps: TritonBackendDeps = {}) {
    super();
    this.options = resolveTritonOptions(options);
    this.clock = deps.clock ?? systemClock;
    this.random = deps.random ?? Math.random;
    this.picker = deps.picker ?? new LeastOutstandingPicker();
    this.log = deps.log ?? ((m) => console.error(`[inferneo] ${m}`));
    const createClient = deps.createClient ?? defaultClient;
    this.endpoints = this.options.endpoints.map((url) => {
      const endpoint = new TritonEndpoint(createClient(url, this.options), {
        failures: this.options.breaker.failures,
        cooldownMs: this.options.breaker.cooldownMs,
        clock: this.clock,
        probe: (e) => this.recover(e),
      });
      endpoint.breaker.on('state', (state, _previous, reason) => {
        this.log(`Triton endpoint ${url}: circuit ${state}${reason !== undefined && state !== 'closed' ? ` (${reason})` : ''}`);
        this.emit('circuit', url, state, reason);
      });
      return endpoint;
    });
  }

  /** Every endpoint's circuit state and last error, for health reporting and tests. */
  endpointStates(): { endpoint: string; state: CircuitState; outstanding: number; lastError?: string }[] {
    return this.endpoints.map((e) => ({
      endpoint: e.name,
      state: e.breaker.state,
      outstanding: e.outstanding,
      ...(e.breaker.lastError !== undefined ? { lastError: e.breaker.lastError } : {}),
    }));
  }

  /** Names of the models in the repository of the first endpoint that answers. */
  async repositoryModels(): Promise<string[]> {
    let last: unknown;
    for (const e of this.endpoints) {
      try {
        const index = await e.client.repositoryIndex(this.options.requestTimeoutMs);
        return [...new Set(index.map((r) => r.name))].sort();
      } catch (err) {
        last = err;
      }
    }
    throw toInferneoError(last);
  }

  async load(model: string, version: string): Promise<LoadedVersion> {
    if (!/^[0-9]+$/.test(version)) throw new LoadFailedError(`model '${model}' version '${version}': Triton versions are integers`);
    let versions = this.wanted.get(model);
    if (versions === undefined) this.wanted.set(model, (versions = new Set()));
    versions.add(version);
    const targets = this.endpoints.filter((e) => e.breaker.allowsCalls);
    if (targets.length === 0) {
      this.unwant(model, version);
      throw this.outage(this.endpoints);
    }
    const results = await Promise.allSettled(targets.map((e) => this.sync(e, model)));
    if (targets.some((e) => e.holds(model, version))) {
      results.forEach((r, i) => {
        if (r.status === 'rejected' || !targets[i]!.holds(model, version)) {
          this.log(`model ${model} v${version} is not ready on Triton ${targets[i]!.name}: ${this.whyNot(targets[i]!, model, version, r)}`);
        }
      });
      return this.loadedVersion(model);
    }
    this.unwant(model, version);
    const reasons = targets.map((e, i) => `${e.name}: ${this.whyNot(e, model, version, results[i]!)}`).join('; ');
    const unreachable = results.every((r) => r.status === 'rejected' && isEndpointFailure(toInferneoError(r.reason)));
    if (unreachable) throw new UnavailableError(`cannot load model '${model}' version ${version}: ${reasons}`);
    throw new LoadFailedError(`Triton failed to load model '${model}' version ${version}: ${reasons}`);
  }

  async unload(model: string, version: string): Promise<void> {
    this.unwant(model, version);
    const hosts = this.endpoints.filter((e) => e.models().includes(model));
    // Stop routing first; the reload with the smaller version set (or the unload) follows.
    for (const e of hosts) e.dropVersion(model, version);
    await Promise.all(
      hosts.map(async (e) => {
        // An endpoint that is down gets its models put right by the probe that brings it back.
        if (!e.breaker.allowsCalls) return;
        await this.sync(e, model).catch((err: Error) => this.log(`unloading model ${model} v${version} from Triton ${e.name}: ${err.message}`));
      }),
    );
  }

  /** Triton queues and schedules by itself: keep `inflightPerInstance` executions per instance and endpoint. */
  inflightLimit(_model: string, _version: string, instances: number): number {
    return instances * this.options.endpoints.length * this.options.inflightPerInstance;
  }

  isServing(model: string, version: string): boolean {
    return this.wanted.get(model)?.has(version) === true && this.endpoints.some((e) => e.holds(model, version));
  }

  /** Loaded, and some endpoint holding it lets calls through (its circuit is not open). */
  isAvailable(model: string, version: string): boolean {
    return this.isServing(model, version) && this.endpoints.some((e) => e.holds(model, version) && e.breaker.allowsCalls);
  }

  loadedVersions(): { model: string; version: string }[] {
    const out: { model: string; version: string }[] = [];
    for (const [model, versions] of this.wanted) {
      for (const version of versions) if (this.isServing(model, version)) out.push({ model, version });
    }
    return out;
  }

  async infer(model: string, version: string, requests: BackendRequest[]): Promise<BackendResponse[]> {
    if (requests.length === 1) return [{ outputs: await this.call(model, version, { inputs: requests[0]!.inputs, outputs: requests[0]!.outputs ?? [] }) }];
    const merged = this.merge(model, requests);
    if (merged !== undefined) {
      try {
        return splitOutputs(await this.call(model, version, { inputs: merged.inputs, outputs: merged.outputs }), merged.rows);
      } catch (err) {
        const error = toInferneoError(err);
        // A request-level failure (bad data, an exception in the model) is run again request by
        // request, so that one bad request does not fail the others of its batch.
        if (error.code !== ErrorCode.INVALID_ARGUMENT && error.code !== ErrorCode.INTERNAL) throw error;
      }
    }
    return Promise.all(
      requests.map((r) =>
        this.call(model, version, { inputs: r.inputs, outputs: r.outputs ?? [] }).then(
          (outputs): BackendResponse => ({ outputs }),
          (err: unknown): BackendResponse => ({ error: toInferneoError(err) }),
        ),
      ),
    );
  }

  async describe(model: string): Promise<RemoteModel> {
    const e = this.endpoints.find((x) => x.breaker.allowsCalls);
    if (e === undefined) throw this.outage(this.endpoints);
    return e.exclusive(model, async () => {
      const before = await this.states(e, model);
      if (before === undefined) throw new NotFoundError(`Triton ${e.name} has no model '${model}' in its model repository`);
      let versions = readyIn(before);
      let config = this.configs.get(model) ?? (versions.length > 0 ? await e.client.modelConfig(model, this.options.requestTimeoutMs) : undefined);
      if (config === undefined) {
        // Triton shows the configuration of loaded models only: load it by its own policy, look, and
        // unload it again (nothing wants it yet).
        const refused = await this.plainLoad(e, model);
        const after = (await this.states(e, model)) ?? new Map();
        versions = readyIn(after);
        if (versions.length === 0) {
          const reasons = [...after.values()].map((s) => s.reason).filter((r) => r !== undefined);
          throw new LoadFailedError(`Triton ${e.name} cannot load model '${model}', so its configuration is unknown: ${refused?.message ?? (reasons.join('; ') || 'no version became ready')}`);
        }
        config = await e.client.modelConfig(model, this.options.requestTimeoutMs);
        if (!this.wanted.has(model)) await e.client.unloadModel(model, this.options.loadTimeoutMs);
      }
      this.configs.set(model, config);
      return { config, versions };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.endpoints) e.breaker.dispose();
    await Promise.all(this.endpoints.map((e) => e.client.close()));
    this.wanted.clear();
  }

  // -- inference ----------------------------------------------------------------------------------

  /** The batch as one Triton request, when the model batches and the requests can be merged. */
  private merge(model: string, requests: BackendRequest[]): MergedBatch | undefined {
    if (Number(this.configs.get(model)?.['max_batch_size'] ?? 0) <= 0) return undefined;
    return mergeRequests(requests);
  }

  /** One Triton inference call, with retries and the endpoints' circuits. */
  private async call(model: string, version: string, call: TritonInferCall): Promise<Tensor[]> {
    let attempt = 0;
    let reloaded = false;
    for (;;) {
      const e = this.pick(model, version);
      let error: InferneoError;
      e.outstanding++;
      try {
        const outputs = await e.client.infer(model, version, call, this.options.requestTimeoutMs);
        e.breaker.success();
        return outputs;
      } catch (err) {
        error = toInferneoError(err);
      } finally {
        e.outstanding--;
      }
      if (isEndpointFailure(error)) e.breaker.failure(error.message);
      else e.breaker.success();
      if (error.code === ErrorCode.NOT_FOUND && !reloaded && this.isServing(model, version)) {
        // Triton lost the model (it restarted, or someone unloaded it): load it there again and retry.
        reloaded = true;
        this.log(`Triton ${e.name} does not have model ${model} v${version} any more (${error.message}); loading it again`);
        await this.sync(e, model).catch(() => undefined);
        continue;
      }
      if (!isRetryable(error) || attempt >= this.options.retry.retries) {
        if (isRetryable(error) && !e.breaker.allowsCalls) throw e.breaker.unavailable();
        if (attempt === 0) throw error;
        throw new InferneoError(error.code, `${error.message} (after ${attempt + 1} attempts)`, { cause: error });
      }
      await sleep(this.clock, backoffDelay(attempt++, { baseMs: this.options.retry.backoffMs, maxMs: this.options.retry.maxBackoffMs }, this.random));
    }
  }

  private pick(model: string, version: string): TritonEndpoint {
    const holders = this.endpoints.filter((e) => e.holds(model, version));
    if (holders.length === 0) throw new ModelNotReadyError(`model '${model}' version ${version} is not loaded on any Triton endpoint`);
    const healthy = holders.filter((e) => e.breaker.allowsCalls);
    if (healthy.length === 0) throw this.outage(holders);
    return this.picker.pick(healthy);
  }

  private outage(endpoints: readonly TritonEndpoint[]): UnavailableError {
    if (endpoints.length === 1) return endpoints[0]!.breaker.unavailable();
    return new UnavailableError(`every Triton endpoint is unavailable: ${endpoints.map((e) => e.breaker.unavailable().message).join('; ')}`);
  }

  // -- model control ------------------------------------------------------------------------------

  private unwant(model: string, version: string): void {
    const versions = this.wanted.get(model);
    versions?.delete(version);
    if (versions?.size === 0) {
      this.wanted.delete(model);
      // Learnt again on the next load, so that a changed config in Triton's repository is seen.
      this.configs.delete(model);
    }
  }

  private whyNot(e: TritonEndpoint, model: string, version: string, result: PromiseSettledResult<void>): string {
    if (result.status === 'rejected') return toInferneoError(result.reason).message;
    return e.reason(model, version) ?? 'not ready after the load';
  }

  /** Brings one endpoint in line with the wanted versions of `model` (queued behind other work on it). */
  private sync(e: TritonEndpoint, model: string): Promise<void> {
    return e.exclusive(model, async () => {
      try {
        await this.syncNow(e, model);
        e.breaker.success();
      } catch (err) {
        const error = toInferneoError(err);
        if (isEndpointFailure(error)) e.breaker.failure(error.message);
        throw error;
      }
    });
  }

  /** The caller holds `e.exclusive(model)`. */
  private async syncNow(e: TritonEndpoint, model: string): Promise<void> {
    const want = [...(this.wanted.get(model) ?? [])].sort(byNumber);
    const states = (await this.states(e, model)) ?? new Map();
    const ready = readyIn(states);
    if (want.length === 0) {
      if (e.models().includes(model) && ready.length > 0) await e.client.unloadModel(model, this.options.loadTimeoutMs);
      e.forget(model);
      return;
    }
    let config = this.configs.get(model);
    if (sameSet(ready, want) && config !== undefined) {
      e.setReady(model, ready);
      return;
    }
    if (config === undefined) {
      config = await this.learnConfig(e, model, ready.length > 0);
      this.configs.set(model, config);
    }
    let refused: InferneoError | undefined;
    try {
      await e.client.loadModel(model, { ...config, version_policy: { specific: { versions: want.map(Number) } } }, this.options.loadTimeoutMs);
    } catch (err) {
      refused = toInferneoError(err);
      if (isEndpointFailure(refused)) throw refused;
    }
    const after = (await this.states(e, model)) ?? new Map();
    const reasons = new Map<string, string>();
    for (const v of want) {
      const s = after.get(v);
      if (s?.state !== 'READY') reasons.set(v, refused?.message ?? s?.reason ?? `version ${v} is ${s?.state ?? 'not in the repository'}`);
    }
    e.setReady(
      model,
      want.filter((v) => after.get(v)?.state === 'READY'),
      reasons,
    );
  }

  /** Triton's configuration of a model; loads it by its own policy first when it is not loaded. */
  private async learnConfig(e: TritonEndpoint, model: string, loaded: boolean): Promise<Record<string, unknown>> {
    const refused = loaded ? undefined : await this.plainLoad(e, model);
    try {
      return await e.client.modelConfig(model, this.options.requestTimeoutMs);
    } catch (err) {
      throw refused ?? err;
    }
  }

  /** Loads a model with its own config; resolves with Triton's refusal, if any, rejects on endpoint failures. */
  private async plainLoad(e: TritonEndpoint, model: string): Promise<InferneoError | undefined> {
    try {
      await e.client.loadModel(model, undefined, this.options.loadTimeoutMs);
      return undefined;
    } catch (err) {
      const error = toInferneoError(err);
      if (isEndpointFailure(error)) throw error;
      return error;
    }
  }

  /** The states of a model's versions in Triton's repository index; undefined when the model is not in it. */
  private async states(e: TritonEndpoint, model: string): Promise<VersionStates | undefined> {
    const index: TritonIndexEntry[] = await e.client.repositoryIndex(this.options.requestTimeoutMs);
    const rows = index.filter((r) => r.name === model);
    if (rows.length === 0) return undefined;
    const out: VersionStates = new Map();
    for (const r of rows) {
      if (r.version === undefined) continue;
      const entry: { state?: string; reason?: string } = {};
      if (r.state !== undefined) entry.state = r.state;
      if (r.reason !== undefined && r.reason !== '') entry.reason = oneLine(r.reason);
      out.set(String(r.version), entry);
    }
    return out;
  }

  /**
   * The probe of an endpoint's half-open circuit: the server is ready, and holds again every model
   * the backend wants there (a restarted Triton in explicit mode has none).
   */
  private async recover(e: TritonEndpoint): Promise<void> {
    if (!(await e.client.serverReady(this.options.probeTimeoutMs))) throw new UnavailableError(`Triton ${e.name} is not ready`);
    // Models load in parallel (Triton loads each on its own threads): recovery takes the slowest load, not their sum.
    await Promise.all(
      [...new Set([...this.wanted.keys(), ...e.models()])].map(async (model) => {
        try {
          await e.exclusive(model, () => this.syncNow(e, model));
        } catch (err) {
          const error = toInferneoError(err);
          if (isEndpointFailure(error)) throw error;
          this.log(`Triton ${e.name} came back but cannot load model ${model}: ${error.message}`);
          return;
        }
        for (const version of this.wanted.get(model) ?? []) {
          if (!e.holds(model, version)) this.log(`Triton ${e.name} came back without model ${model} v${version}: ${e.reason(model, version) ?? 'not ready'}`);
        }
      }),
    );
  }

  private loadedVersion(model: string): LoadedVersion {
    const config = this.configs.get(model) ?? {};
    const maxBatchSize = Number(config['max_batch_size'] ?? 0);
    const backend = typeof config['backend'] === 'string' ? config['backend'] : '';
    const platform = typeof config['platform'] === 'string' && config['platform'] !== '' ? config['platform'] : backend;
    return {
      platform,
      backend,
      maxBatchSize,
      inputs: signatures(config['input'], maxBatchSize),
      outputs: signatures(config['output'], maxBatchSize),
      config,
    };
  }
}
