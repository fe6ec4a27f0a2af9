import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Backend } from '../backends/backend.js';
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  InferneoError,
  InvalidArgumentError,
  LoadFailedError,
  ModelNotReadyError,
  NotFoundError,
  toInferneoError,
} from '../errors.js';
import { modelConfigFromJson } from './model-config.js';
import { readRepositoryModel, type RepositoryModel, scanRepository } from './model-repository.js';
import {
  type BackendKind,
  type ModelRecord,
  type RegistryChange,
  type RegistryStore,
  type VersionRecord,
  VersionState,
} from './registry-store.js';

/**
 * The models and versions Inferneo knows and their lifecycle
 * (`registered → loading → ready → draining → unloaded`, `failed` with the reason), kept in Redis
 * through the RegistryStore and shared by every orchestrator. This class drives the backend to
 * load and unload, loads a version on its first request (one load however many requests wait),
 * counts the requests in flight per version so that unloading drains them first, and follows the
 * changes other orchestrators make.
 */

export { VersionState };
export type { ModelRecord, VersionRecord };

export interface ModelRegistryOptions {
  /** Model repository in Triton's layout; its models are registered at start. */
  repository: string;
  backend: Backend;
  store: RegistryStore;
  /** How long a request waits for a version it caused to load. @defaultValue 60000 */
  lazyLoadTimeoutMs?: number;
  /** How long unloading waits for the version's in-flight requests. @defaultValue 30000 */
  drainTimeoutMs?: number;
  /** Lifecycle log lines. @defaultValue console.error with a prefix */
  log?: (message: string) => void;
  /**
   * The backend of a model that is registered because it was found (the repository scan, a
   * repository `load`): e.g. 'triton' for the models `triton.models` names. @defaultValue always 'python'
   */
  backendFor?: (model: string) => BackendKind;
}

/**
 * The `source` of a model that lives in Triton's own model repository rather than in the
 * orchestrator's: its config comes from Triton, and Triton alone has its files.
 */
export function remoteSource(model: string): string {
  return `triton://${model}`;
}

export function isRemoteSource(source: string): boolean {
  return source.startsWith('triton://');
}

/** A version held for one request; `release()` exactly once when the request is done. */
export interface Lease {
  readonly model: string;
  readonly version: string;
  release(): void;
}

/**
 * Says why an operation on a model or version would break something (a route that needs it), or
 * undefined when it would not. Installed by the routing layer, which the registry must not import.
 */
export type UsageGuard = (model: string, version: string | undefined, action: 'unload' | 'delete') => string | undefined;

/** A row of `POST /v2/repository/index`, in Triton's format. */
export interface IndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

const TRITON_STATE: Readonly<Record<VersionState, string>> = {
  registered: 'UNAVAILABLE',
  loading: 'LOADING',
  ready: 'READY',
  draining: 'UNLOADING',
  unloaded: 'UNAVAILABLE',
  failed: 'UNAVAILABLE',
};

function key(model: string, version: string): string {
  return `${model}\u0000${version}`;
}

export class ModelRegistry {
  private readonly repository: string;
  private readonly backend: Backend;
  private readonly store: RegistryStore;
  private readonly lazyLoadTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly backendFor: (model: string) => BackendKind;
  private guard: UsageGuard = () => undefined;
  /** Requests in flight per version, in this process. */
  private readonly inflight = new Map<string, number>();
  private readonly drained = new Map<string, (() => void)[]>();
  /** One load per version at a time, however many callers want it (single flight). */
  private readonly loads = new Map<string, Promise<VersionRecord>>();
  private readonly localLoads = new Map<string, Promise<void>>();

  constructor(options: ModelRegistryOptions) {
    this.repository = options.repository;
    this.backend = options.backend;
    this.store = options.store;
    this.lazyLoadTimeoutMs = options.lazyLoadTimeoutMs ?? 60_000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.log = options.log ?? ((m) => console.error(`[inferneo] ${m}`));
    this.backendFor = options.backendFor ?? (() => 'python');
    this.store.on('change', (change, remote) => {
      if (remote) void this.followRemote(change);
    });
  }

  setUsageGuard(guard: UsageGuard): void {
    this.guard = guard;
  }

  // -- reading --------------------------------------------------------------------------------

  models(): ModelRecord[] {
    return this.store.models();
  }

  model(name: string): ModelRecord {
    const model = this.store.model(name);
    if (model === undefined) throw new NotFoundError(`unknown model '${name}'`);
    return model;
  }

  versions(name: string): VersionRecord[] {
    this.model(name);
    return this.store.versions(name);
  }

  version(name: string, version: string): VersionRecord {
    this.model(name);
    const record = this.store.version(name, version);
    if (record === undefined) {
      const known = this.store.versions(name).map((v) => v.version);
      throw new NotFoundError(`unknown version '${version}' of model '${name}'; its versions are ${known.join(', ') || 'none'}`);
    }
    return record;
  }

  /** Whether this process can dispatch a request to the version right now. */
  isServing(name: string, version: string): boolean {
    const record = this.store.version(name, version);
    return record !== undefined && record.state !== VersionState.DRAINING && this.backend.isServing(name, version);
  }

  /** Whether a model (its latest servable version, or the one named) is ready and served here. */
  isReady(name: string, version?: string): boolean {
    if (version !== undefined) return this.store.version(name, version)?.state === VersionState.READY && this.isServing(name, version);
    return this.store.versions(name).some((v) => v.state === VersionState.READY && this.isServing(name, v.version));
  }

  /**
   * Whether a model (version) is ready and its backend can reach a host for it right now — what
   * Triton's model-ready endpoints answer. A version behind a Triton whose circuits are open is
   * ready (loaded, it comes back by itself) but not available.
   */
  isAvailable(name: string, version?: string): boolean {
    const available = (v: string): boolean => this.backend.isAvailable?.(name, v) ?? true;
    if (version !== undefined) return this.isReady(name, version) && available(version);
    return this.store.versions(name).some((v) => this.isReady(name, v.version) && available(v.version));
  }

  /**
   * The version that serves a request naming `name` (and maybe a version): the named one, else
   * the highest ready one, else the highest one that can be loaded on demand. Throws NOT_FOUND, or
   * MODEL_NOT_READY with every version's state when none can serve.
   */
  resolve(name: string, version?: string): VersionRecord {
    if (version !== undefined) return this.version(name, version);
    const versions = this.versions(name);
    const ready = versions.filter((v) => v.state === VersionState.READY);
    const loadable = versions.filter((v) => v.state === VersionState.REGISTERED || v.state === VersionState.UNLOADED);
    const pick = ready[ready.length - 1] ?? loadable[loadable.length - 1];
    if (pick !== undefined) return pick;
    const states = versions.map((v) => `version ${v.version}: ${v.state}${v.reason !== undefined ? ` (${v.reason})` : ''}`);
    throw new ModelNotReadyError(`model '${name}' has no ready version${states.length > 0 ? `: ${states.join('; ')}` : ''}`);
  }

  /** Rows of the repository index, in Triton's format; `readyOnly` keeps ready versions only. */
  index(readyOnly = false): IndexEntry[] {
    const rows: IndexEntry[] = [];
    for (const model of this.models()) {
      for (const v of this.store.versions(model.name)) {
        if (readyOnly && v.state !== VersionState.READY) continue;
        const row: IndexEntry = { name: model.name, version: v.version, state: TRITON_STATE[v.state] };
        const reason = v.reason ?? (v.state === VersionState.REGISTERED ? 'not loaded' : undefined);
        if (reason !== undefined) row.reason = reason;
        rows.push(row);
      }
    }
    return rows;
  }

  // -- the data plane -------------------------------------------------------------------------

  /**
   * Holds a version for one request. Ready versions are held at once; a registered or unloaded
   * one is loaded first (the request waits up to the lazy-load timeout). Rejects with 503
   * MODEL_NOT_READY naming the reason when the version failed, is being unloaded, or took too long.
   */
  async acquire(name: string, version: string): Promise<Lease> {
    const record = this.version(name, version);
    if (record.state === VersionState.DRAINING) {
      throw new ModelNotReadyError(`model '${name}' version ${version} is being unloaded`);
    }
    if (!this.backend.isServing(name, version)) {
      if (record.state === VersionState.FAILED) {
        throw new ModelNotReadyError(`model '${name}' version ${version} failed to load: ${record.reason ?? 'unknown reason'}; load it again to retry`);
      }
      await this.loadOnDemand(record);
    }
    const k = key(name, version);
    this.inflight.set(k, (this.inflight.get(k) ?? 0) + 1);
    let released = false;
    return {
      model: name,
      version,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.inflight.get(k) ?? 1) - 1;
        if (left > 0) {
          this.inflight.set(k, left);
          return;
        }
        this.inflight.delete(k);
        for (const wake of this.drained.get(k) ?? []) wake();
        this.drained.delete(k);
      },
    };
  }

  /** Requests in flight on a version in this process. */
  inflightCount(name: string, version: string): number {
    return this.inflight.get(key(name, version)) ?? 0;
  }

  // -- registration ---------------------------------------------------------------------------

  /** Registers every model of the repository not known yet, and new versions of known ones. */
  async syncRepository(): Promise<void> {
    for (const found of await scanRepository(this.repository)) {
      if (found.config === undefined) {
        this.log(`skipping ${found.name}: ${found.error ?? 'unreadable'}`);
        continue;
      }
      const existing = this.store.model(found.name);
      if (existing === undefined) {
        await this.registerFound(found, this.backendFor(found.name));
        continue;
      }
      if (existing.source === path.resolve(found.dir)) {
        await this.store.putModel({ ...existing, config: found.config });
      }
      for (const v of found.servedVersions) {
        if (this.store.version(found.name, v) === undefined) await this.putVersion(this.newVersion(found.name, v, existing.backend, existing.source));
      }
    }
  }

  /**
   * Registers a model from its directory (by default `<repository>/<name>`) with the versions its
   * policy serves. A Triton-hosted model that the repository does not hold is described by Triton
   * (its config and versions) instead.
   */
  async registerModel(input: { name: string; backend?: BackendKind; source?: string }): Promise<ModelRecord> {
    if (this.store.model(input.name) !== undefined) throw new AlreadyExistsError(`model '${input.name}' is already registered`);
    const source = path.resolve(input.source ?? path.join(this.repository, input.name));
    let found: RepositoryModel;
    try {
      found = await readRepositoryModel(path.dirname(source), path.basename(source));
    } catch {
      if (input.backend === 'triton' && input.source === undefined) return this.registerRemote(input.name);
      throw new InvalidArgumentError(`source: ${source} is not a model directory (it must hold config.pbtxt and version directories)`);
    }
    if (found.config === undefined) throw new InvalidArgumentError(`source: ${found.error ?? 'unreadable config'}`);
    // The config names its directory (Triton checks that); the registered name may differ from it.
    const config = { ...found.config, name: input.name, json: { ...found.config.json, name: input.name } };
    return this.registerFound({ ...found, name: input.name, config }, input.backend ?? 'python');
  }

  /** Registers one more version of a model; its directory must exist in the model's (or the given) source. */
  async registerVersion(name: string, input: { version: string; backend?: BackendKind; source?: string; pinned?: boolean }): Promise<VersionRecord> {
    const model = this.model(name);
    if (this.store.version(name, input.version) !== undefined) {
      throw new AlreadyExistsError(`version '${input.version}' of model '${name}' is already registered`);
    }
    const given = input.source ?? model.source;
    const source = isRemoteSource(given) ? given : path.resolve(given);
    if (isRemoteSource(source)) {
      // Triton has the files; it says whether the version exists when it is loaded.
      if (!/^[0-9]+$/.test(input.version)) throw new InvalidArgumentError(`version: Triton versions are integers, got '${input.version}'`);
    } else {
      const dir = path.join(source, input.version);
      const info = await stat(dir).catch(() => undefined);
      if (!info?.isDirectory()) throw new InvalidArgumentError(`version: there is no directory ${dir} holding version '${input.version}'`);
    }
    const record = this.newVersion(name, input.version, input.backend ?? model.backend, source);
    record.pinned = input.pinned ?? false;
    await this.putVersion(record);
    this.log(`model ${name} v${input.version}: registered from ${source}`);
    return record;
  }

  async setPinned(name: string, version: string, pinned: boolean): Promise<VersionRecord> {
    const record = { ...this.version(name, version), pinned };
    await this.putVersion(record);
    return record;
  }

  async deleteVersion(name: string, version: string): Promise<void> {
    const record = this.version(name, version);
    if (record.pinned) throw new ConflictError(`model '${name}' version ${version} is pinned; unpin it before deleting it`);
    const blocked = this.guard(name, version, 'delete');
    if (blocked !== undefined) throw new ConflictError(`cannot delete model '${name}' version ${version}: ${blocked}`);
    await this.drainAndUnload(record);
    await this.store.deleteVersion(name, version);
    this.log(`model ${name} v${version}: deleted`);
  }

  async deleteModel(name: string): Promise<void> {
    const versions = this.versions(name);
    const pinned = versions.filter((v) => v.pinned).map((v) => v.version);
    if (pinned.length > 0) throw new ConflictError(`model '${name}' has pinned versions (${pinned.join(', ')}); unpin them before deleting it`);
    const blocked = this.guard(name, undefined, 'delete');
    if (blocked !== undefined) throw new ConflictError(`cannot delete model '${name}': ${blocked}`);
    await Promise.all(versions.map((v) => this.drainAndUnload(v)));
    await this.store.deleteModel(name);
    this.log(`model ${name}: deleted`);
  }

  // -- lifecycle ------------------------------------------------------------------------------

  /**
   * Loads a version (with the warm-up its config asks for) and marks it ready; a failure marks it
   * failed with the reason and rejects with LOAD_FAILED. Concurrent calls share one load.
   */
  load(name: string, version: string): Promise<VersionRecord> {
    const k = key(name, version);
    const running = this.loads.get(k);
    if (running !== undefined) return running;
    const task = this.doLoad(name, version).finally(() => this.loads.delete(k));
    this.loads.set(k, task);
    return task;
  }

  /**
   * Unloads a version: no new requests (draining), the ones in flight finish, then the backend
   * frees it. 409 when it is pinned or a route needs it.
   */
  async unload(name: string, version: string): Promise<VersionRecord> {
    const record = this.version(name, version);
    if (record.pinned) throw new ConflictError(`model '${name}' version ${version} is pinned; unpin it before unloading it`);
    const blocked = this.guard(name, version, 'unload');
    if (blocked !== undefined) throw new ConflictError(`cannot unload model '${name}' version ${version}: ${blocked}`);
    return this.drainAndUnload(record);
  }

  /**
   * Triton's repository `load`: re-reads the model from the repository, registers versions its
   * policy now serves, and loads them. Rejects with LOAD_FAILED naming every version that failed.
   */
  async loadModel(name: string): Promise<void> {
    if (this.store.model(name) === undefined) {
      const found = await readRepositoryModel(this.repository, name).catch(() => undefined);
      if (found === undefined) {
        if (this.backendFor(name) !== 'triton') throw new NotFoundError(`unknown model '${name}': no directory of that name in the model repository`);
        await this.registerRemote(name);
      } else {
        if (found.config === undefined) throw new LoadFailedError(`failed to load model '${name}': ${found.error ?? 'no config'}`);
        await this.registerFound(found, this.backendFor(name));
      }
    } else {
      const model = this.model(name);
      const found = await readRepositoryModel(path.dirname(model.source), path.basename(model.source)).catch(() => undefined);
      if (found?.config !== undefined) {
        await this.store.putModel({ ...model, config: found.config });
        for (const v of found.servedVersions) {
          if (this.store.version(name, v) === undefined) await this.putVersion(this.newVersion(name, v, model.backend, model.source));
        }
      }
    }
    const failures: string[] = [];
    await Promise.all(
      this.store.versions(name).map((v) =>
        this.load(name, v.version).catch((err: Error) => {
          failures.push(`version ${v.version}: ${err.message}`);
        }),
      ),
    );
    if (failures.length > 0) throw new LoadFailedError(`failed to load model '${name}': ${failures.join('; ')}`);
  }

  /** Triton's repository `unload`: unloads every version of the model (409 when something needs one). */
  async unloadModel(name: string): Promise<void> {
    const versions = this.versions(name).filter((v) => v.state !== VersionState.UNLOADED && v.state !== VersionState.REGISTERED);
    for (const v of versions) {
      if (v.pinned) throw new ConflictError(`model '${name}' version ${v.version} is pinned; unpin it before unloading it`);
      const blocked = this.guard(name, v.version, 'unload');
      if (blocked !== undefined) throw new ConflictError(`cannot unload model '${name}' version ${v.version}: ${blocked}`);
    }
    await Promise.all(versions.map((v) => this.drainAndUnload(v)));
  }

  /**
   * After restart, or when another orchestrator loaded versions: bring this process's workers in
   * line with the shared state (versions ready there are loaded here too).
   */
  async reconcile(): Promise<void> {
    await Promise.all(
      this.models().flatMap((m) =>
        this.store.versions(m.name).map(async (v) => {
          if (v.state === VersionState.READY) await this.localLoad(v).catch((err: Error) => this.log(`model ${v.model} v${v.version}: ${err.message}`));
          else if (v.state === VersionState.LOADING) await this.load(v.model, v.version).catch(() => undefined);
        }),
      ),
    );
  }

  /** Marks a version that the backend dropped (e.g. evicted) as unloaded, unless another host still serves it. */
  async noteEvicted(name: string, version: string, reason: string): Promise<void> {
    const record = this.store.version(name, version);
    if (record === undefined || this.backend.isServing(name, version) || record.state !== VersionState.READY) return;
    await this.putVersion({ ...record, state: VersionState.UNLOADED, reason });
    this.log(`model ${name} v${version}: unloaded (${reason})`);
  }

  // -- internals ------------------------------------------------------------------------------

  private async doLoad(name: string, version: string): Promise<VersionRecord> {
    const record = this.version(name, version);
    if (record.state === VersionState.READY && this.backend.isServing(name, version)) return record;
    if (record.state === VersionState.DRAINING) throw new ConflictError(`model '${name}' version ${version} is being unloaded; load it again when it is unloaded`);
    await this.putVersion({ ...record, state: VersionState.LOADING, reason: undefined });
    const started = Date.now();
    try {
      const loaded = await this.backend.load(name, version, { source: record.source });
      const ready: VersionRecord = { ...this.version(name, version), state: VersionState.READY, reason: undefined };
      if (loaded.memoryBytes !== undefined) ready.memory_bytes = loaded.memoryBytes;
      await this.putVersion(ready);
      this.log(`model ${name} v${version}: ready in ${Date.now() - started} ms`);
      return ready;
    } catch (err) {
      const error = toInferneoError(err);
      const reason = error.message;
      // No room, or no reachable host (no worker, Triton down), is not a broken model: it stays
      // loadable, and the next request or load tries again.
      const state = error.code === 'RESOURCE_EXHAUSTED' || error.code === 'UNAVAILABLE' ? VersionState.UNLOADED : VersionState.FAILED;
      const current = this.store.version(name, version);
      if (current !== undefined) await this.putVersion({ ...current, state, reason });
      this.log(`model ${name} v${version}: ${state} (${reason})`);
      throw err instanceof InferneoError && err.code !== 'INTERNAL' ? err : new LoadFailedError(reason);
    }
  }

  private async loadOnDemand(record: VersionRecord): Promise<void> {
    // Ready elsewhere (another orchestrator) or still registered: load here; a registered or
    // unloaded version goes through the lifecycle so that everyone sees it become ready.
    const loading =
      record.state === VersionState.READY ? this.localLoad(record) : this.load(record.model, record.version).then(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new DeadlineExceededError(`model '${record.model}' version ${record.version} did not load within ${this.lazyLoadTimeoutMs} ms`)),
        this.lazyLoadTimeoutMs,
      );
    });
    try {
      await Promise.race([loading, timeout]);
    } catch (err) {
      const e = toInferneoError(err);
      throw new ModelNotReadyError(`model '${record.model}' version ${record.version} is not loaded and could not be loaded on demand: ${e.message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Loads a version on this process's backend only, without touching the shared state. */
  private localLoad(record: VersionRecord): Promise<void> {
    const k = key(record.model, record.version);
    const running = this.localLoads.get(k);
    if (running !== undefined) return running;
    const task = this.backend
      .load(record.model, record.version, { source: record.source })
      .then(() => undefined)
      .finally(() => this.localLoads.delete(k));
    this.localLoads.set(k, task);
    return task;
  }

  private async drainAndUnload(record: VersionRecord): Promise<VersionRecord> {
    const { model, version } = record;
    if (record.state === VersionState.UNLOADED || record.state === VersionState.REGISTERED) return record;
    await this.putVersion({ ...record, state: VersionState.DRAINING, reason: undefined });
    const waited = await this.drain(model, version);
    await this.backend.unload(model, version);
    const unloaded: VersionRecord = { ...this.version(model, version), state: VersionState.UNLOADED, reason: 'unloaded' };
    await this.putVersion(unloaded);
    this.log(`model ${model} v${version}: unloaded${waited > 0 ? ` after draining for ${waited} ms` : ''}`);
    return unloaded;
  }

  /** Waits until no request is in flight on the version (or the drain timeout); resolves with the wait in ms. */
  private async drain(model: string, version: string): Promise<number> {
    const k = key(model, version);
    if ((this.inflight.get(k) ?? 0) === 0) return 0;
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log(`model ${model} v${version}: ${this.inflight.get(k) ?? 0} request(s) still in flight after ${this.drainTimeoutMs} ms; unloading anyway`);
        resolve();
      }, this.drainTimeoutMs);
      const waiters = this.drained.get(k) ?? [];
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.drained.set(k, waiters);
    });
    return Date.now() - started;
  }

  private newVersion(model: string, version: string, backend: BackendKind, source: string): VersionRecord {
    return { model, version, backend, source, state: VersionState.REGISTERED, pinned: false, updated_at: new Date().toISOString() };
  }

  /** Registers a model of Triton's own repository, with the config and versions Triton reports. */
  private async registerRemote(name: string): Promise<ModelRecord> {
    if (this.backend.describe === undefined) throw new NotFoundError(`unknown model '${name}': it is not in the model repository and no Triton is configured`);
    const remote = await this.backend.describe(name);
    const config = modelConfigFromJson({ ...remote.config, name }, name);
    const versions = [...remote.versions].sort((a, b) => Number(a) - Number(b));
    return this.registerFound({ name, dir: remoteSource(name), config, versions, servedVersions: versions }, 'triton');
  }

  private async registerFound(found: RepositoryModel, backend: BackendKind): Promise<ModelRecord> {
    // Absolute, so that workers started elsewhere (another working directory) find the same files.
    const source = isRemoteSource(found.dir) ? found.dir : path.resolve(found.dir);
    const record: ModelRecord = { name: found.name, backend, source, config: found.config!, created_at: new Date().toISOString() };
    await this.store.putModel(record);
    for (const v of found.servedVersions) await this.putVersion(this.newVersion(found.name, v, backend, source));
    this.log(`model ${found.name}: registered (versions ${found.servedVersions.join(', ') || 'none'})`);
    return record;
  }

  private async putVersion(record: VersionRecord): Promise<void> {
    const clean: VersionRecord = { ...record, updated_at: new Date().toISOString() };
    if (clean.reason === undefined) delete clean.reason;
    await this.store.putVersion(clean);
  }

  /** Keeps this process's workers in line with what other orchestrators decided. */
  private async followRemote(change: RegistryChange): Promise<void> {
    if (change.kind === 'route') return;
    try {
      if (change.kind === 'model') {
        if (this.store.model(change.model) !== undefined) return;
        // Deleted elsewhere: free whatever this process still has of it.
        const mine = this.backend.loadedVersions().filter((v) => v.model === change.model);
        await Promise.all(mine.map((v) => this.backend.unload(v.model, v.version)));
        return;
      }
      const record = this.store.version(change.model, change.version);
      const serving = this.backend.isServing(change.model, change.version);
      if ((record === undefined || record.state === VersionState.DRAINING || record.state === VersionState.UNLOADED) && serving) {
        await this.drain(change.model, change.version);
        await this.backend.unload(change.model, change.version);
      } else if (record?.state === VersionState.READY && !serving) {
        await this.localLoad(record);
      }
    } catch (err) {
      this.log(`following a change of ${JSON.stringify(change)}: ${(err as Error).message}`);
    }
  }
}
